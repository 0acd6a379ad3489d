"""Two real server processes behind the same Redis and PostgreSQL: two people editing one board,
each on a different process, at the same time, converge, and so do both processes' documents."""

import asyncio
import json
import urllib.request
import uuid

import pytest
from websockets.asyncio.client import connect

from boards.services import board_create, board_update_apply
from rooms.models import Membership, Room
from rooms.services import room_create
from tests.boards_helpers import Client, b64
from tests.test_multiprocess import ws_url

pytestmark = [pytest.mark.multiprocess]

EDITS = 15


def get_json(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


async def joined(socket) -> dict:
    """The socket's board.state (the answer to its board.join)."""
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
        if frame["type"] == "board.state":
            return frame


async def edit_and_listen(socket, board_id: str, client: Client, name: str, total: int) -> list[int]:
    """Send EDITS updates (one shared element, one of its own) as fast as acks allow while
    applying everyone else's; returns the numbers received from others, in arrival order."""
    acked: set[int] = set()
    received: list[int] = []
    sent = 0

    async def send_next() -> None:
        nonlocal sent
        before = client.doc.get_state()
        client.edit("shared", **{f"by_{name}": sent, "x": sent, "type": "rect"})
        if sent % 3 == 0:
            client.edit(f"own-{name}-{sent}", type="sticky", text=name)
        update = b64(client.doc.get_update(before))
        sent += 1
        frame = {"type": "board.update", "board": board_id, "update": update, "client_update_id": str(uuid.uuid4())}
        await socket.send(json.dumps(frame))

    await send_next()
    while len(acked) + len(received) < total:
        frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
        if frame["type"] == "board.update.ack":
            acked.add(frame["sequence"])
            if sent < EDITS:
                await send_next()
        elif frame["type"] == "board.update":
            received.append(frame["sequence"])
            client.apply(frame["update"])
        elif frame["type"] == "error":
            raise AssertionError(frame)
    assert acked.isdisjoint(received)
    return received


def test_two_processes_converge_on_one_board(start_server, make_user):
    ada, bob = make_user("ada"), make_user("bob")
    room = room_create(creator=ada, name="Bridge", kind=Room.Kind.PRIVATE)
    Membership.objects.create(room=room, user=bob)
    board = board_create(user=ada, room_id=room.pk, title="Shared")
    # The shared element exists before both edit it (two concurrent creations of one key would not
    # merge: the Yjs map keeps one of them whole).
    board_update_apply(
        user=ada, board_id=board.pk, update=Client().edit("shared", type="rect"), client_update_id=uuid.uuid4()
    )
    first, second = start_server(), start_server()
    ada_url, ada_token = ws_url(first, "ada")
    bob_url, bob_token = ws_url(second, "bob")
    board_id = str(board.pk)

    async def scenario():
        async with connect(ada_url, max_size=2**22) as ada_socket, connect(bob_url, max_size=2**22) as bob_socket:
            for socket in (ada_socket, bob_socket):
                await socket.send(json.dumps({"type": "board.join", "board": board_id}))
            # Both have joined before either edits: each then hears all the other's.
            states = await asyncio.gather(joined(ada_socket), joined(bob_socket))
            assert [state["sequence"] for state in states] == [1, 1]
            ada_doc, bob_doc = Client(), Client()
            for doc, state in zip((ada_doc, bob_doc), states, strict=True):
                doc.apply(state["update"])
            ada_got, bob_got = await asyncio.gather(
                edit_and_listen(ada_socket, board_id, ada_doc, "ada", 2 * EDITS),
                edit_and_listen(bob_socket, board_id, bob_doc, "bob", 2 * EDITS),
            )
            # Each got the other's updates, in strictly increasing order, across processes.
            assert ada_got == sorted(ada_got) and bob_got == sorted(bob_got)
            assert len(ada_got) == len(bob_got) == EDITS
            return ada_doc.render(), bob_doc.render()

    ada_render, bob_render = asyncio.run(scenario())
    assert ada_render == bob_render
    shared = next(e for e in ada_render["elements"] if e["id"] == "shared")
    assert shared["by_ada"] == shared["by_bob"] == EDITS - 1  # both properties merged
    # Both processes' documents agree with the clients (the second catches up from the database).
    for base, token in ((first, ada_token), (second, bob_token)):
        body = get_json(f"{base}/api/v1/boards/{board_id}/", token)
        assert body["sequence"] == 2 * EDITS + 1
        assert {"elements": body["elements"]} == ada_render
