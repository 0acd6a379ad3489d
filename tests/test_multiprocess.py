"""Two real server processes behind the same Redis deliver to each other's sockets."""

import asyncio
import json
import urllib.request
import uuid

import pytest
from websockets.asyncio.client import connect

from rooms.models import Membership, Room
from rooms.services import room_create

pytestmark = [pytest.mark.multiprocess]


def post_json(url: str, data: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(data).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def ws_url(base: str, username: str) -> str:
    """Sign in over REST like a mobile client, trade the JWT for a ticket, build the socket URL."""
    tokens = post_json(f"{base}/api/v1/auth/token/", {"username": username, "password": "correct-horse-battery"})
    ticket = post_json(f"{base}/api/v1/auth/ws-ticket/", {}, token=tokens["access"])["ticket"]
    return base.replace("http", "ws", 1) + f"/ws/?ticket={ticket}", tokens["access"]


async def next_of(socket, frame_type: str) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
        if frame["type"] == frame_type:
            return frame


def test_two_server_processes_relay_to_each_others_sockets(start_server, make_user):
    ada, bob = make_user("ada"), make_user("bob")
    room = room_create(creator=ada, name="Bridge", kind=Room.Kind.PRIVATE)
    Membership.objects.create(room=room, user=bob)
    first, second = start_server(), start_server()
    ada_url, _ = ws_url(first, "ada")
    bob_url, bob_token = ws_url(second, "bob")

    async def scenario():
        async with connect(ada_url) as ada_socket, connect(bob_url) as bob_socket:
            await next_of(ada_socket, "session.ready")
            await next_of(bob_socket, "session.ready")
            # Ada on process 1 sends over the socket; Bob on process 2 receives it.
            key = str(uuid.uuid4())
            frame = {"type": "message.send", "room": str(room.pk), "content": "across", "client_msg_id": key}
            await ada_socket.send(json.dumps(frame))
            received = await next_of(bob_socket, "message.new")
            assert received["message"]["content"] == "across" and received["message"]["sequence"] == 1
            # Bob sends over REST on process 2; Ada on process 1 receives it live.
            await asyncio.to_thread(
                post_json,
                f"{second}/api/v1/rooms/{room.pk}/messages/",
                {"content": "and back", "client_msg_id": str(uuid.uuid4())},
                bob_token,
            )
            own = await next_of(ada_socket, "message.new")  # senders get their own message.new too
            back = await next_of(ada_socket, "message.new")
            assert [(m["message"]["sequence"], m["message"]["content"]) for m in (own, back)] == [
                (1, "across"),
                (2, "and back"),
            ]

    asyncio.run(scenario())
