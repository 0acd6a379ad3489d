"""A client that stops reading is closed (4429) and never holds back the other sockets."""

import asyncio
import json
import socket
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from rooms.models import Membership, Room
from rooms.services import room_create
from tests.test_multiprocess import next_of, ws_url

pytestmark = [pytest.mark.multiprocess]

MESSAGES = 2000
# ~8 KB frames (the text and its html): 16 MB in all, more than the kernel buffers hold (4 MB here)
CONTENT = "x" * 3900
WINDOW = 6


def test_a_client_that_stops_reading_is_closed_and_holds_nobody_back(start_server, make_user):
    ada, bob, eve = make_user("ada"), make_user("bob"), make_user("eve")
    room = room_create(creator=ada, name="Busy", kind=Room.Kind.PRIVATE)
    Membership.objects.bulk_create([Membership(room=room, user=bob), Membership(room=room, user=eve)])
    # Ada sends as fast as she can: this test is about a slow reader, not about rate limits.
    unlimited = {
        f"RATE_LIMIT_{level}_{kind}": "100000,100000" for level in ("SOCKET", "USER") for kind in ("FRAME", "SEND")
    }
    server = start_server(WS_MAX_BACKLOG_BYTES=str(64 * 1024), **unlimited)
    ada_url, _ = ws_url(server, "ada")
    bob_url, _ = ws_url(server, "bob")
    eve_url, _ = ws_url(server, "eve")

    async def scenario():
        # Eve reads session.ready and then nothing: a tiny receive buffer and a one-frame queue
        # in the client library, so the server's unread bytes pile up at once.
        eve_sock = socket.socket()
        eve_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        eve_sock.connect(("127.0.0.1", int(server.rsplit(":", 1)[1])))
        async with (
            connect(ada_url) as ada_socket,
            connect(bob_url) as bob_socket,
            connect(eve_url, sock=eve_sock, max_queue=1) as eve_socket,
        ):
            for sock in (ada_socket, bob_socket, eve_socket):
                await next_of(sock, "session.ready")

            async def drain(sock):  # Ada reads what comes back (her acks and messages) as she sends
                async for _ in sock:
                    pass

            ada_reads = asyncio.create_task(drain(ada_socket))

            # Bob gets every message, in order, while Eve reads nothing (before, the process's
            # fan-out waited for Eve's socket to drain: everyone else stalled with her). When the
            # server closes Eve (4429), Bob sees her go offline: she reads again from then on,
            # what was buffered and then the close frame. (Not only after Bob's last message: the
            # server drops a closed socket whose client has not read its close frame within
            # uvicorn's close_timeout, 10 s, which Bob's reading can outlast on a loaded machine.)
            async def eve_reads() -> ConnectionClosed:
                try:
                    while True:
                        await eve_socket.recv()
                except ConnectionClosed as closed:
                    return closed

            eve_reading: asyncio.Task | None = None
            bob_got = 0
            bob_moved = asyncio.Event()

            def eve_offline(presence: dict) -> bool:
                return presence["user"]["id"] == eve.pk and presence["status"] == "offline"

            async def bob_reads() -> None:
                nonlocal bob_got, eve_reading
                try:
                    while bob_got < MESSAGES:
                        frame = json.loads(await asyncio.wait_for(bob_socket.recv(), timeout=30))
                        if frame["type"] == "message.new":
                            bob_got += 1
                            assert frame["sequence"] == bob_got
                            bob_moved.set()
                        elif frame["type"] == "presence" and eve_offline(frame):
                            assert eve_reading is None  # she goes offline once
                            eve_reading = asyncio.create_task(eve_reads())
                finally:
                    bob_moved.set()

            bob_reading = asyncio.create_task(bob_reads())
            for sent in range(MESSAGES):
                # Ada stays at most WINDOW messages ahead of Bob: only Eve, who reads nothing,
                # falls behind, however slowly this process reads on a loaded machine (a frame,
                # content and its html, is ~8 KB: WINDOW of them are under WS_MAX_BACKLOG_BYTES).
                while sent - bob_got >= WINDOW and not bob_reading.done():
                    bob_moved.clear()
                    await bob_moved.wait()
                frame = {
                    "type": "message.send",
                    "room": str(room.pk),
                    "content": CONTENT,
                    "client_msg_id": str(uuid.uuid4()),
                }
                await ada_socket.send(json.dumps(frame))
            await asyncio.wait_for(bob_reading, timeout=60)
            ada_reads.cancel()
            assert eve_reading is not None, "Eve was never closed"
            closed = await asyncio.wait_for(eve_reading, timeout=30)
            assert closed.rcvd is not None and closed.rcvd.code == 4429

    asyncio.run(scenario())
