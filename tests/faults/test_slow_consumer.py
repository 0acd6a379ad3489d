"""A client that stops reading (its socket open, its receive window closed) while the room it is
in keeps talking and a second room pours 4.7 MB at it: nobody else's live delivery slows down
(the process's fan-out never waits for one socket), and the slow one is closed with 4429
(docs/protocol.md) once more than WS_MAX_BACKLOG_BYTES wait for it beyond what the kernel holds
(~3 MB on this machine's loopback)."""

import asyncio
import json
import socket
import uuid

import pytest
from django.db import connection
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import room_with
from tests.faults import checks
from tests.faults.clients import ANSWER_BOUND, http_json
from tests.faults.harness import INTEGRITY, Stack, assert_none, outage_scenario

BACKLOG = 64 * 1024
FIREHOSE = 1200  # messages of ~4 KB to the slow socket's second room: more than the kernel buffers
WINDOW = 50  # firehose messages in flight at once
# The firehose is not what is measured: its user may send far faster than the product's limits.
UNLIMITED = {f"RATE_LIMIT_{level}_{kind}": "10000,10000" for level in ("SOCKET", "USER") for kind in ("SEND", "FRAME")}


async def ticket_url(server: str, token: str) -> str:
    answer = await http_json("POST", f"{server}/api/v1/auth/ws-ticket/", {}, token)
    return server.replace("http", "ws", 1) + f"/ws/?ticket={answer.body['ticket']}"


class SlowReader:
    """A socket that reads its session.ready and then nothing until `resume()`."""

    def __init__(self) -> None:
        self.close_code: int | None = None
        self.frames_after_pause = 0

    async def open(self, server: str, token: str) -> None:
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server's writes pile up
        raw.connect(("127.0.0.1", int(server.rsplit(":", 1)[1])))
        raw.setblocking(False)
        self.socket = await connect(await ticket_url(server, token), sock=raw, max_queue=1, ping_interval=None)
        assert json.loads(await self.socket.recv())["type"] == "session.ready"

    async def resume(self, bound: float = 20) -> None:
        """Read again: what the kernel had buffered, then the server's close frame."""
        try:
            async with asyncio.timeout(bound):
                while True:
                    await self.socket.recv()
                    self.frames_after_pause += 1
        except ConnectionClosed as closed:
            self.close_code = closed.rcvd.code if closed.rcvd is not None else None
        except TimeoutError:
            self.close_code = -1  # still open after reading for `bound` seconds
            await self.socket.close()


async def firehose(server: str, token: str, room: str) -> int:
    """Send FIREHOSE ~4 KB messages to `room`, WINDOW at a time; the number acked."""
    acked = 0
    async with connect(await ticket_url(server, token), ping_interval=None, max_size=None) as sock:
        for start in range(0, FIREHOSE, WINDOW):
            for _ in range(start, min(start + WINDOW, FIREHOSE)):
                content = f"firehose {uuid.uuid4()} " + "y" * 3900
                frame = {"type": "message.send", "room": room, "content": content, "client_msg_id": str(uuid.uuid4())}
                await sock.send(json.dumps(frame))
            waiting = min(start + WINDOW, FIREHOSE) - start
            async with asyncio.timeout(ANSWER_BOUND):
                while waiting:
                    frame = json.loads(await sock.recv())
                    if frame["type"] in ("message.ack", "error"):
                        acked += frame["type"] == "message.ack"
                        waiting -= 1
    return acked


@pytest.fixture(scope="module")
def slow(fault_db):
    reader = SlowReader()
    pouring: list[asyncio.Task] = []

    def second_room(stack: Stack) -> str:
        try:
            *_, pourer, slow_user = stack.people.users  # two members the fleet does not use
            return str(room_with(pourer, "firehose", "private", members={slow_user: "member"}).pk)
        finally:
            connection.close()

    async def stop_reading(stack: Stack) -> None:
        room = await asyncio.to_thread(second_room, stack)
        await reader.open(stack.urls[0], stack.people.tokens[-1])
        pouring.append(asyncio.create_task(firehose(stack.urls[1], stack.people.tokens[-2], room)))

    async def read_again(stack: Stack) -> None:
        pouring.append(await pouring[0])  # every firehose message answered (bounded per window)
        await reader.resume()

    result = outage_scenario(
        "slow_consumer",
        f"One socket stops reading while its rooms get {FIREHOSE} x 4 KB (WS_MAX_BACKLOG_BYTES 64 KB)",
        stop_reading,
        read_again,
        outage=6,
        after=3,
        env={"WS_MAX_BACKLOG_BYTES": str(BACKLOG), **UNLIMITED},
        recovery_since="fault",
    )
    result.slow_close, result.firehose_acked = reader.close_code, pouring[1]
    result.run.notes.append(
        f"the slow socket: closed with {reader.close_code} after {reader.frames_after_pause} buffered frames; "
        f"firehose {pouring[1]}/{FIREHOSE} acked"
    )
    result.save()
    return result


def test_nothing_is_lost_duplicated_or_reordered(slow):
    assert_none(slow.problems(*INTEGRITY), "integrity")


def test_every_send_is_answered_within_10s(slow):
    assert_none(slow.problems("unanswered"), "unanswered sends")
    assert slow.firehose_acked == FIREHOSE


def test_the_others_get_every_message_live_within_1s(slow):
    assert_none(checks.late_deliveries(slow.run, since="fault"), "late live deliveries while one socket did not read")
    assert_none(slow.problems("close_codes", "api_errors_are_json"), "closes and API errors")


def test_the_slow_socket_is_closed_with_4429(slow):
    assert slow.slow_close == 4429
