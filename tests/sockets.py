"""Socket helpers for tests that drive the consumer in-process (Channels' communicator)."""

import json

from channels.testing import WebsocketCommunicator

from config.asgi import application
from messaging.consumers import ChatConsumer

TIMEOUT = 5  # a bound on waiting for something that must happen, never a measurement


async def connect(user) -> tuple[WebsocketCommunicator, dict]:
    """A socket authenticated as `user` (the auth layer skipped), after its session.ready."""
    communicator = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    ready = await communicator.receive_json_from(timeout=TIMEOUT)
    assert ready["type"] == "session.ready"
    return communicator, ready


async def connect_app(path: str = "/ws/", headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    """A socket through the whole ASGI application, its auth layer included."""
    communicator = WebsocketCommunicator(application, path, headers=[(b"host", b"localhost"), *(headers or [])])
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    return communicator


async def receive_type(communicator: WebsocketCommunicator, frame_type: str) -> dict:
    """The next frame of the given type, skipping others (e.g. member.update)."""
    while True:
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        if frame["type"] == frame_type:
            return frame


async def receive_close(communicator: WebsocketCommunicator) -> tuple[int, list[dict]]:
    """The close code the server sent, and the frames that came before it."""
    frames = []
    while True:
        output = await communicator.receive_output(timeout=TIMEOUT)
        if output["type"] == "websocket.close":
            return output.get("code", 1000), frames
        frames.append(json.loads(output["text"]))
