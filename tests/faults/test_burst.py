"""A burst of FAULTS_BURST new sockets (1,000 by default; `make test-faults FAULTS_BURST=10000`
for the issue's 10,000) opened at once against the two server processes while the fleet keeps
sending: every one becomes ready (or is refused with a documented code, never dropped), every
send of the fleet is still answered within 10 s, and every burst socket gets its room's next
message live."""

import asyncio
import json
import os
import random
import time
import uuid

import pytest
from django.db import connection
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.faults.checks import percentiles
from tests.faults.clients import http_json
from tests.faults.harness import INTEGRITY, Stack, assert_none, outage_scenario

BURST = int(os.environ.get("FAULTS_BURST", "1000"))
SOCKETS_PER_USER, USERS_PER_ROOM = 10, 10  # rooms of 100 sockets: presence fans out to 100, not to all
WAVE = 500  # tickets are issued this many at a time, just before their sockets connect (30 s TTL)
IN_FLIGHT = 250  # handshakes the client keeps in flight at once (its own CPU is the limit)
READY_BOUND = 60.0  # a burst socket must be ready within this of its connect starting
HEARTBEAT = 30.0  # seconds between a socket's heartbeats, as docs/protocol.md asks (silent for 120 s: closed)


def burst_users(count: int) -> list[tuple[object, str, str]]:
    """(user, access token, room id) for `count` users in private rooms of USERS_PER_ROOM."""
    from django.contrib.auth.hashers import make_password
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.models import User
    from rooms.models import Membership, Room
    from workspaces.services import default_workspace

    try:
        unusable = make_password(None)
        tag = uuid.uuid4().hex[:6]
        users = User.objects.bulk_create(
            [User(username=f"b{tag}-{i}", email=f"b{tag}-{i}@example.com", password=unusable) for i in range(count)]
        )
        groups = [users[i : i + USERS_PER_ROOM] for i in range(0, count, USERS_PER_ROOM)]
        workspace = default_workspace()
        rooms = Room.objects.bulk_create(
            [
                Room(name=f"burst {i}", kind=Room.Kind.PRIVATE, created_by=group[0], workspace=workspace)
                for i, group in enumerate(groups)
            ]
        )
        Membership.objects.bulk_create(
            [
                Membership(room=room, user=user, role=Membership.Role.OWNER if n == 0 else Membership.Role.MEMBER)
                for room, group in zip(rooms, groups, strict=True)
                for n, user in enumerate(group)
            ]
        )
        return [
            (user, str(AccessToken.for_user(user)), str(room.pk))
            for room, group in zip(rooms, groups, strict=True)
            for user in group
        ]
    finally:
        connection.close()


def issue_tickets(users: list) -> list[str]:
    from accounts.services import ws_ticket_issue

    return [ws_ticket_issue(user=user)[0] for user in users]


class Burst:
    def __init__(self, count: int) -> None:
        self.count = count
        self.outcomes: dict[str, int] = {}
        self.ready_s: list[float] = []
        self.sockets: list[tuple[object, str]] = []  # (socket, room)
        self.received: dict[int, float] = {}  # socket index -> when its room's message came
        self.close_codes: dict[str, int] = {}

    def outcome(self, name: str) -> None:
        self.outcomes[name] = self.outcomes.get(name, 0) + 1

    async def open(self, stack: Stack) -> None:
        members = await asyncio.to_thread(burst_users, self.count // SOCKETS_PER_USER)
        self.members = members
        plan = [
            (user, token, room, n % len(stack.urls)) for user, token, room in members for n in range(SOCKETS_PER_USER)
        ]
        gate = asyncio.Semaphore(IN_FLIGHT)
        started = time.monotonic()
        for wave in range(0, len(plan), WAVE):
            part = plan[wave : wave + WAVE]
            tickets = await asyncio.to_thread(issue_tickets, [user for user, *_ in part])
            await asyncio.gather(
                *(
                    self.connect(gate, stack.urls[server], ticket, room)
                    for (_, _, room, server), ticket in zip(part, tickets, strict=True)
                )
            )
        self.took = time.monotonic() - started

    async def connect(self, gate: asyncio.Semaphore, server: str, ticket: str, room: str) -> None:
        url = server.replace("http", "ws", 1) + f"/ws/?ticket={ticket}"
        async with gate:
            started = time.monotonic()
            try:
                async with asyncio.timeout(READY_BOUND):
                    sock = await connect(url, ping_interval=None, compression=None, close_timeout=5)
                    frame = json.loads(await sock.recv())
            except InvalidStatus as error:
                return self.outcome(f"handshake_{error.response.status_code}")
            except ConnectionClosed as closed:
                return self.outcome(f"closed:{closed.rcvd.code if closed.rcvd else 1006}")
            except TimeoutError:
                return self.outcome("not_ready_in_time")
            except OSError as error:
                return self.outcome(f"connect_failed:{type(error).__name__}")
        if frame.get("type") != "session.ready":
            return self.outcome(f"first_frame:{frame.get('type')}")
        self.outcome("ready")
        self.ready_s.append(time.monotonic() - started)
        index = len(self.sockets)
        self.sockets.append((sock, room))
        asyncio.get_running_loop().create_task(self.listen(index, sock, room))
        asyncio.get_running_loop().create_task(self.heartbeat(sock))

    async def heartbeat(self, sock) -> None:
        """Like every client: a heartbeat every 30 s (from a random point, so they spread out)."""
        await asyncio.sleep(random.uniform(0, HEARTBEAT))
        try:
            while True:
                await sock.send('{"type": "heartbeat", "active": false}')
                await asyncio.sleep(HEARTBEAT)
        except ConnectionClosed:
            pass

    async def listen(self, index: int, sock, room: str) -> None:
        try:
            async for raw in sock:
                frame = json.loads(raw)
                if frame["type"] == "message.new" and frame["room"] == room and index not in self.received:
                    self.received[index] = time.monotonic()
        except ConnectionClosed:
            pass
        finally:
            code = sock.close_code if sock.close_code is not None else 1006
            self.close_codes[str(code)] = self.close_codes.get(str(code), 0) + 1

    async def fan_out(self, stack: Stack) -> None:
        """One message in every burst room (REST, by one member): when does every socket have it?"""
        senders = {}
        for _, token, room in self.members:
            senders.setdefault(room, token)
        gate = asyncio.Semaphore(8)  # the fleet's REST clients share the client's HTTP threads

        async def post(room: str, token: str):
            async with gate:
                body = {"content": "burst", "client_msg_id": str(uuid.uuid4())}
                return await http_json("POST", f"{stack.urls[0]}/api/v1/rooms/{room}/messages/", body, token)

        started = time.monotonic()
        answers = await asyncio.gather(*(post(room, token) for room, token in senders.items()))
        self.fan_out_posts = [a.status for a in answers]
        deadline = started + 10
        while len(self.received) < len(self.sockets) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.fan_out_s = (max(self.received.values()) - started) if self.received else None
        await asyncio.gather(*(sock.close() for sock, _ in self.sockets))

    def figures(self) -> dict:
        return {
            "burst": self.count,
            "burst_outcomes": dict(sorted(self.outcomes.items())),
            "burst_ready_ms": percentiles(self.ready_s),
            "burst_max_ready_s": round(max(self.ready_s), 2) if self.ready_s else None,
            "burst_s": round(self.took, 1),
            "burst_fan_out_s": round(self.fan_out_s, 2) if self.fan_out_s is not None else None,
            "burst_live": len(self.received),
            "burst_close_codes": self.close_codes,
        }


@pytest.fixture(scope="module")
def burst(fault_db):
    opened = Burst(BURST)
    result = outage_scenario(
        "burst" if BURST == 1000 else f"burst_{BURST}",
        f"{BURST:,} new sockets at once ({IN_FLIGHT} handshakes in flight) while the fleet sends",
        opened.open,
        opened.fan_out,
        outage=0,
        after=3,
    )
    result.burst = opened
    result.figures.update(opened.figures())
    result.save()
    return result


def test_every_burst_socket_becomes_ready(burst):
    assert burst.burst.outcomes == {"ready": BURST}


def test_every_burst_socket_gets_its_rooms_next_message_live(burst):
    assert set(burst.burst.fan_out_posts) == {201}
    assert len(burst.burst.received) == BURST


def test_burst_sockets_close_cleanly(burst):
    assert burst.burst.close_codes == {"1000": BURST}


def test_the_fleet_loses_nothing_and_is_answered_within_10s(burst):
    assert_none(burst.problems(*INTEGRITY, "unanswered", "close_codes", "api_errors_are_json"), "the fleet")
