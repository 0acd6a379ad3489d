"""core.wire: the frame bytes it builds, and writing them straight to a real uvicorn socket."""

import asyncio
import socket

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode

from core import wire


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_text_frame_is_what_websockets_would_send(size):
    text = ("é" * size)[: size // 2] + "x" * (size - size // 2)  # multi-byte characters too
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    assert wire.text_frame(text) == expected


@pytest.mark.asyncio
@pytest.mark.parametrize("deflate", [False, True])
async def test_frames_go_straight_to_a_uvicorn_socket_unless_compression_was_negotiated(deflate):
    """With per-message deflate on (not how we run uvicorn), frames must be compressed, so there
    is no direct path and ASGI send is used; either way the client reads the same messages."""
    found = {"direct": 0}

    async def app(scope, receive, send):
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        server = wire.server_of(send)
        found["server"] = server
        for text in ("first", "x" * 70000, "last"):
            if server is not None and wire.write(server, wire.text_frame(text)):
                found["direct"] += 1
            else:
                await send({"type": "websocket.send", "text": text})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        app, ws="websockets-sansio", ws_per_message_deflate=deflate, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        compression = "deflate" if deflate else None
        async with connect(f"ws://127.0.0.1:{port}/", compression=compression, max_size=None) as client:
            received = [await asyncio.wait_for(client.recv(), 5) for _ in range(3)]
        assert received == ["first", "x" * 70000, "last"]
        assert found["direct"] == (0 if deflate else 3)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)


def test_only_uvicorns_protocol_gets_direct_writes():
    async def plain_send(message):  # e.g. Channels' test communicator, or daphne
        pass

    assert wire.server_of(plain_send) is None
