"""Server-Sent Events and long-polling (transports/): the socket's events over plain HTTP, against
real server processes (uvicorn, as in production), read with raw asyncio streams so that the
test sees each chunk as the server writes it and can cut the connection at any point."""

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from urllib.parse import quote

import pytest
import redis
from django.conf import settings
from django.test import Client
from websockets.asyncio.client import connect

from accounts.services import user_set_active
from boards.comments import comment_create
from boards.services import board_create, board_update_apply, send_board_frame
from messaging import services as messaging
from messaging.consumers import RoomCursor
from presence import services as presence
from rooms.models import Membership, Room
from rooms.services import membership_add, membership_remove, room_create
from tests.boards_helpers import Client as BoardClient
from tests.boards_helpers import b64
from tests.conftest import send_message, wait_until
from tests.test_multiprocess import post_json, ws_url
from transports import cursors
from transports.streams import MAX_PENDING, Stream

pytestmark = [pytest.mark.multiprocess]

TIMEOUT = 10  # a bound on waiting for something that must happen, never a measurement
PASSWORD = "correct-horse-battery"


def bearer(base: str, username: str) -> dict[str, str]:
    tokens = post_json(f"{base}/api/v1/auth/token/", {"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {tokens['access']}"}


class EventStream:
    """One `GET /api/v1/events/`: the status, the headers, then events as the server writes them."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self.buffer = b""
        self.pings = 0

    @classmethod
    async def open(cls, base: str, headers: dict[str, str], query: str = "") -> "EventStream":
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        stream = cls(reader, writer)
        lines = [f"GET /api/v1/events/{query} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        async with asyncio.timeout(TIMEOUT):
            head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin1").split("\r\n")
        stream.status = int(status_line.split()[1])
        stream.headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines if ":" in h)}
        return stream

    async def _chunk(self) -> bytes:
        """The next piece of the body (chunked transfer encoding); b"" at its end."""
        size = int((await self.reader.readline()).strip() or b"0", 16)
        data = await self.reader.readexactly(size + 2) if size else b""
        if not size:
            await self.reader.readline()
        return data[:-2]

    async def next(self) -> dict | None:
        """The next event, as {"id": …, "data": parsed frame}; None when the server ended the stream."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                while b"\n\n" in self.buffer:
                    block, self.buffer = self.buffer.split(b"\n\n", 1)
                    event: dict = {"id": None, "data": None}
                    for line in block.decode().split("\n"):
                        if line.startswith(":"):
                            self.pings += line == ": ping"
                        elif line.startswith("id: "):
                            event["id"] = line[4:]
                        elif line.startswith("data: "):
                            event["data"] = json.loads(line[6:])
                    if event["data"] is not None:
                        return event
                chunk = await self._chunk()
                if not chunk:
                    return None
                self.buffer += chunk

    async def next_numbered(self) -> dict:
        """The next event that carries an id (skipping presence and the like)."""
        while True:
            event = await self.next()
            assert event is not None, "the stream ended"
            if event["id"] is not None:
                return event

    async def next_data(self) -> dict:
        event = await self.next()
        assert event is not None, "the stream ended"
        return event["data"]

    async def until(self, predicate) -> list[dict]:
        """Events up to and including the first whose frame satisfies `predicate`."""
        seen = []
        while True:
            event = await self.next()
            assert event is not None, f"the stream ended after {seen}"
            seen.append(event)
            if predicate(event["data"]):
                return seen

    def close(self) -> None:
        self.writer.close()


def http_post(url: str, headers: dict[str, str], body: dict | None = None) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body or {}).encode(), headers=headers | {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT + 30) as response:
        return response.status


def http_get(url: str, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT + 30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def poll(base: str, headers: dict[str, str], cursor: str | None = None, boards: str = "") -> dict:
    params = ([f"cursor={quote(cursor)}"] if cursor else []) + ([f"boards={boards}"] if boards else [])
    query = "?" + "&".join(params) if params else ""
    status, body = await asyncio.to_thread(http_get, f"{base}/api/v1/poll/{query}", headers)
    assert status == 200, body
    return body


def is_message(content: str):
    return lambda f: f["type"] == "message.new" and f["message"]["content"] == content


def in_thread(function, /, **kwargs):
    return asyncio.to_thread(function, **kwargs)


def test_socket_sse_and_long_poll_deliver_the_same_events_in_the_same_order(start_server, make_user):
    ada, bob, carol = make_user("ada"), make_user("bob"), make_user("carol")
    room = room_create(creator=ada, name="Bridge", kind=Room.Kind.PRIVATE)
    Membership.objects.create(room=room, user=bob)
    owner = Membership.objects.get(room=room, user=ada)
    board = board_create(user=ada, room_id=room.pk, title="Plan")
    board_update_apply(user=ada, board_id=board.pk, update=BoardClient().edit("a", x=1), client_update_id=uuid.uuid4())
    base = start_server()
    bob_socket_url, _ = ws_url(base, "bob")
    auth, ada_auth = bearer(base, "bob"), bearer(base, "ada")
    boards = str(board.pk)

    async def scenario():
        sse = await EventStream.open(base, auth, f"?boards={boards}")
        assert sse.status == 200 and sse.headers["content-type"].startswith("text/event-stream")
        assert sse.headers["x-accel-buffering"] == "no" and sse.headers["cache-control"] == "no-cache"
        first = await sse.next()
        assert first["data"]["type"] == "session.ready" and first["id"]
        assert first["data"]["rooms"] == {str(room.pk): 0}
        state = await sse.next()  # the board's whole document, as a socket's board.join answer
        assert state["data"]["type"] == "board.state" and state["data"]["sequence"] == 1 and state["id"]
        start = await poll(base, auth, boards=boards)
        assert [f["type"] for f in start["events"]] == ["session.ready", "board.state"] and start["cursor"]

        polled: list[dict] = []
        cursor = start["cursor"]

        async def poller():
            nonlocal cursor
            while not any(is_message("end")(f) for f in polled):
                answer = await poll(base, auth, cursor, boards)
                polled.extend(answer["events"])
                cursor = answer["cursor"]

        async with connect(bob_socket_url) as socket:
            socket_frames: list[dict] = []

            async def socket_until(predicate) -> None:
                while not any(predicate(f) for f in socket_frames):
                    socket_frames.append(json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT)))

            await socket_until(lambda f: f["type"] == "session.ready")
            await socket.send(json.dumps({"type": "board.join", "board": boards}))
            await socket_until(lambda f: f["type"] == "board.state")
            polling = asyncio.create_task(poller())
            # Until a poll has answered live once, its stream may not follow the room yet.
            await in_thread(send_message, room=room, user=ada, content="warm")
            await socket_until(is_message("warm"))
            await sse.until(is_message("warm"))
            async with asyncio.timeout(TIMEOUT):
                while not any(is_message("warm")(f) for f in polled):
                    await asyncio.sleep(0.01)

            one = await in_thread(send_message, room=room, user=ada, content="one")
            await in_thread(messaging.message_edit, user=ada, room_id=room.pk, message_id=one.id, content="one!")
            two = await in_thread(send_message, room=room, user=ada, content="two")
            await in_thread(messaging.message_delete, user=ada, room_id=room.pk, message_id=two.id)
            await in_thread(messaging.receipt_update, user=ada, room_id=room.pk, read_sequence=3)
            # Typing over REST (the SSE / long-poll client's way): the socket's typing frame's effect.
            assert await in_thread(http_post, url=f"{base}/api/v1/rooms/{room.pk}/typing/", headers=ada_auth) == 204
            # Board events: an update (over REST: its number; the stream gets its writer's too), a
            # comment, a simulation's progress (unnumbered, through the board's group).
            update = b64(BoardClient().edit("b", x=2))
            await in_thread(
                http_post,
                url=f"{base}/api/v1/boards/{boards}/updates/",
                headers=ada_auth,
                body={"update": update, "client_update_id": str(uuid.uuid4())},
            )
            await in_thread(comment_create, user=ada, board_id=board.pk, body="look", x=1, y=2)
            progress = {"type": "simulation.progress", "board": boards, "run": str(uuid.uuid4()), "status": "running"}
            await in_thread(send_board_frame, board_id=board.pk, frame=progress | {"progress": None})
            await in_thread(membership_add, actor=owner, user=carol)
            other = await in_thread(room_create, creator=ada, name="Side", kind=Room.Kind.PRIVATE)
            side_owner = await in_thread(Membership.objects.get, room=other, user=ada)
            await in_thread(membership_add, actor=side_owner, user=bob)
            added = lambda f: f["type"] == "room.added" and f["room"]["id"] == str(other.pk)  # noqa: E731
            # Each follows the new room once told: wait for that before speaking there.
            await socket_until(added)
            sse_frames = [e["data"] for e in await sse.until(added)]
            async with asyncio.timeout(TIMEOUT):
                while not any(added(f) for f in polled):
                    await asyncio.sleep(0.01)
            await in_thread(send_message, room=other, user=ada, content="aside")
            await in_thread(membership_remove, actor=side_owner, user=bob)
            await in_thread(send_message, room=other, user=ada, content="not for bob")
            await in_thread(send_message, room=room, user=ada, content="end")
            await socket_until(is_message("end"))
            sse_frames += [e["data"] for e in await sse.until(is_message("end"))]
            async with asyncio.timeout(TIMEOUT):
                await polling
        sse.close()

        def after_warm(frames: list[dict]) -> list[dict]:
            index = next(i for i, f in enumerate(frames) if is_message("warm")(f))
            return [f for f in frames[index + 1 :] if f["type"] != "presence"]

        sse_tail = [f for f in sse_frames if f["type"] != "presence"]
        expected = after_warm(socket_frames)
        # (Bob's own member.update in the side room may come or not: it is published with the
        # room.added that makes the server follow that room. All three agree either way.)
        side = str(other.pk)
        assert [f["type"] for f in expected if not (f["type"] == "member.update" and f["room"] == side)] == [
            *("message.new", "message.edit", "message.new", "message.delete", "receipt", "typing"),
            *("board.update", "board.comment", "simulation.progress"),
            *("member.update", "room.added", "message.new", "room.removed", "message.new"),
        ]
        board_update = next(f for f in expected if f["type"] == "board.update")
        assert (board_update["sequence"], board_update["update"]) == (2, update)
        assert sse_tail == expected
        assert after_warm(polled) == expected

    asyncio.run(scenario())


def test_last_event_id_resumes_every_room_with_nothing_lost_or_repeated(start_server, make_user):
    ada, bob, carol = make_user("ada"), make_user("bob"), make_user("carol")
    rooms = [room_create(creator=ada, name=name, kind=Room.Kind.PRIVATE) for name in ("A", "B")]
    for room in rooms:
        Membership.objects.create(room=room, user=bob)
    first_room, second_room = rooms
    base = start_server(TRANSPORT_POLL_WAIT_SECONDS="1")
    auth = bearer(base, "bob")

    async def scenario():
        sse = await EventStream.open(base, auth)
        assert (await sse.next_data())["type"] == "session.ready"
        await in_thread(send_message, room=first_room, user=ada, content="a1")
        await in_thread(send_message, room=second_room, user=ada, content="b1")
        await in_thread(send_message, room=first_room, user=ada, content="a2")
        seen = await sse.until(is_message("a2"))
        cut_at = seen[-2]  # b1: the client got a2 too, but its id was lost with the connection
        assert cut_at["data"]["message"]["content"] == "b1"
        sse.close()
        # While away: more in both rooms, and an edit of an older message.
        b1 = cut_at["data"]["message"]
        await in_thread(send_message, room=second_room, user=ada, content="b2")
        await in_thread(
            messaging.message_edit, user=ada, room_id=second_room.pk, message_id=b1["id"], content="b1 edited"
        )
        await in_thread(send_message, room=first_room, user=ada, content="a3")

        def summary(frames: list[dict]) -> list[tuple]:
            return [(f["room"], f["sequence"], f["type"], f["message"]["content"]) for f in frames]

        a, b = str(first_room.pk), str(second_room.pk)
        missed = [
            (a, 2, "message.new", "a2"),
            (b, 2, "message.new", "b2"),
            (b, 3, "message.edit", "b1 edited"),
            (a, 3, "message.new", "a3"),
        ]
        lives: list[tuple] = []
        ways = [({"Last-Event-ID": cut_at["id"]}, ""), ({}, f"?last_event_id={quote(cut_at['id'])}")]
        for n, (headers, query) in enumerate(ways):
            resumed = await EventStream.open(base, auth | headers, query)
            assert resumed.status == 200
            expected = missed + lives  # the live message of the first resume is missed by the second
            caught_up = [await resumed.next_numbered() for _ in expected]
            # Room by room in number order (rooms may interleave), each change once.
            got = summary([e["data"] for e in caught_up])
            for room_id in (a, b):
                assert [g for g in got if g[0] == room_id] == [g for g in expected if g[0] == room_id]
            await in_thread(send_message, room=second_room, user=ada, content=f"live {n}")
            live = await resumed.next_numbered()
            lives.append((b, 4 + n, "message.new", f"live {n}"))
            assert summary([live["data"]]) == lives[-1:]
            last_id = live["id"]
            resumed.close()
        # The long-poll takes the same cursor: from the cut, the same changes.
        answer = await poll(base, auth, cut_at["id"])
        got = summary([f for f in answer["events"] if f["type"] != "presence"])  # (Bob's may flap: below)
        for room_id in (a, b):
            assert [g for g in got if g[0] == room_id] == [g for g in missed + lives if g[0] == room_id]
        # Nothing pending after the last id: the poll waits, then answers empty with the same cursor.
        # (Bob's own presence may flap meanwhile: the SSE stream closed just now went offline before
        # the polls' batched heartbeats were written. Presence is an unnumbered hint: no position.)
        empty = await poll(base, auth, last_id)
        assert empty["cursor"] == last_id and [f for f in empty["events"] if f["type"] != "presence"] == []
        # A poller counts for presence once it polls live (the first poll only says session.ready).
        carol_auth = bearer(base, "carol")
        start = await poll(base, carol_auth)
        await poll(base, carol_auth, start["cursor"])
        await asyncio.to_thread(
            wait_until, lambda: presence.presence_of(user_ids=[carol.pk])[carol.pk]["status"] == "online"
        )

    asyncio.run(scenario())


def test_ids_stay_short_across_many_rooms_and_resolve_exactly(transactional_db):
    rooms = {str(uuid.uuid4()): n for n in range(40)}
    position = cursors.Position(cursors.new_stream_id(), 0, rooms)
    cursors.store_base(position.stream, 0, rooms)
    for room in list(rooms)[:10]:
        position.move(room, rooms[room] + 5)
    joined, left = str(uuid.uuid4()), list(rooms)[-1]
    position.move(joined, 7)
    position.forget(left)
    encoded = position.encode()
    assert len(encoded) < 200
    assert f".{position.index[left]:x}-g" in encoded and f".{uuid.UUID(joined).hex}-7" in encoded
    resolved = cursors.resolve(encoded)
    assert resolved is not None and resolved.rooms() == position.rooms()
    assert left not in resolved.rooms() and resolved.rooms()[joined] == 7
    assert cursors.resolve(f"{position.stream}-9") is None  # no such base: start afresh
    for bad in ("", "x", "abc.def", position.stream + "-0.zz-1", "A" * 5000):
        with pytest.raises(cursors.BadPosition):
            cursors.parse(bad)


def test_access_outsiders_get_nothing_removed_members_stop_at_once_revoked_streams_end(start_server, make_user):
    ada, bob, carol = make_user("ada"), make_user("bob"), make_user("carol")
    room = room_create(creator=ada, name="Secret", kind=Room.Kind.PRIVATE)
    lobby = room_create(creator=ada, name="Lobby", kind=Room.Kind.PRIVATE)
    for user in (bob, carol):
        Membership.objects.create(room=lobby, user=user)
    Membership.objects.create(room=room, user=bob)
    owner = Membership.objects.get(room=room, user=ada)
    base = start_server()
    bob_auth, carol_auth = bearer(base, "bob"), bearer(base, "carol")

    async def scenario():
        carol_sse = await EventStream.open(base, carol_auth)
        bob_sse = await EventStream.open(base, bob_auth)
        ready = await carol_sse.next_data()
        assert list(ready["rooms"]) == [str(lobby.pk)]
        assert set((await bob_sse.next_data())["rooms"]) == {str(room.pk), str(lobby.pk)}
        start = await poll(base, bob_auth)
        cursor = start["cursor"]
        # The poll follows once it has answered live: a first message in the lobby.
        await in_thread(send_message, room=lobby, user=ada, content="hello")
        answer = await poll(base, bob_auth, cursor)
        assert [f["message"]["content"] for f in answer["events"] if f["type"] == "message.new"] == ["hello"]
        cursor = answer["cursor"]
        await in_thread(send_message, room=room, user=ada, content="secret")
        await in_thread(membership_remove, actor=owner, user=bob)
        await in_thread(send_message, room=room, user=ada, content="after")
        await in_thread(send_message, room=lobby, user=ada, content="marker")
        # Carol never sees the secret room; Bob sees it up to his removal, then nothing of it.
        carol_frames = [e["data"] for e in await carol_sse.until(is_message("marker"))]
        assert all(f.get("room") in (str(lobby.pk), None) for f in carol_frames if f["type"] != "presence")
        assert [f["message"]["content"] for f in carol_frames if f["type"] == "message.new"] == ["hello", "marker"]
        expected = ["secret", "room.removed", "marker"]
        bob_events = await bob_sse.until(is_message("marker"))
        bob_frames = [e["data"] for e in bob_events]
        shown = [f["message"]["content"] if f["type"] == "message.new" else f["type"] for f in bob_frames]
        assert [s for s in shown if s in ("secret", "after", "room.removed", "marker")] == expected
        polled: list[dict] = []
        while not any(is_message("marker")(f) for f in polled):
            answer = await poll(base, bob_auth, cursor)
            polled += answer["events"]
            cursor = answer["cursor"]
        shown = [f["message"]["content"] if f["type"] == "message.new" else f["type"] for f in polled]
        assert [s for s in shown if s in ("secret", "after", "room.removed", "marker")] == expected
        # Resuming from before the removal: told once that the room is gone, and nothing of it;
        # from the removal's own id: neither again.
        removed_at = next(i for i, f in enumerate(bob_frames) if f["type"] == "room.removed")
        before = next(e["id"] for e in reversed(bob_events[:removed_at]) if e["id"])
        for position, expect in ((before, ["room.removed", "marker"]), (bob_events[removed_at]["id"], ["marker"])):
            resumed = await EventStream.open(base, bob_auth | {"Last-Event-ID": position})
            frames = []
            while not frames or not is_message("marker")(frames[-1]):
                frames.append((await resumed.next_numbered())["data"])
            shown = [f["message"]["content"] if f["type"] == "message.new" else f["type"] for f in frames]
            assert [s for s in shown if s in ("secret", "after", "room.removed", "marker")] == expect
            resumed.close()
        # Deactivating Bob (a revocation) ends his stream at once, and he can open no new one.
        await in_thread(user_set_active, user=bob, active=False)
        tail = []
        while (event := await bob_sse.next()) is not None:
            tail.append(event["data"]["type"])
        assert tail[-1] == "session.revoked"
        again = await EventStream.open(base, bob_auth)
        assert again.status == 401
        again.close()
        carol_sse.close()

    asyncio.run(scenario())


def test_cookie_path_refuses_a_foreign_origin_and_unauthenticated_requests(start_server, make_user):
    bob = make_user("bob")
    base = start_server()
    browser = Client()
    browser.force_login(bob)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"

    async def scenario():
        for origin, status in (("http://evil.example", 403), (base, 200), (None, 200)):
            headers = {"Cookie": cookie} | ({"Origin": origin} if origin else {})
            stream = await EventStream.open(base, headers)
            assert stream.status == status, origin
            if status == 200:
                assert (await stream.next_data())["type"] == "session.ready"
            stream.close()
            code, body = await asyncio.to_thread(http_get, f"{base}/api/v1/poll/", headers)
            assert code == status, (origin, body)
            if status == 403:
                assert body["error"]["code"] == "forbidden"
        stream = await EventStream.open(base, {})
        assert stream.status == 401
        stream.close()
        code, body = await asyncio.to_thread(http_get, f"{base}/api/v1/poll/", {})
        assert (code, body["error"]["code"]) == (401, "not_authenticated")
        # A bearer token is no cookie: any origin may use it (mobile, other apps).
        stream = await EventStream.open(base, bearer(base, "bob") | {"Origin": "http://evil.example"})
        assert stream.status == 200
        stream.close()
        code, body = await asyncio.to_thread(http_get, f"{base}/api/v1/poll/?cursor=nonsense", bearer(base, "bob"))
        assert (code, body["error"]["code"]) == (400, "invalid")

    asyncio.run(scenario())


def test_a_stream_pings_and_leaves_the_hub_when_its_client_disconnects(start_server, make_user):
    ada, bob = make_user("ada"), make_user("bob")
    room = room_create(creator=ada, name="Bridge", kind=Room.Kind.PRIVATE)
    Membership.objects.create(room=room, user=bob)
    base = start_server(TRANSPORT_PING_SECONDS="1")
    auth = bearer(base, "bob")
    bus = redis.Redis.from_url(settings.REDIS_URL)
    channels = [f"parley.bus.user.{bob.pk}", f"parley.bus.room.{room.pk}"]

    def subscribers() -> list[int]:
        return [count for _, count in bus.pubsub_numsub(*channels)]

    async def scenario():
        stream = await EventStream.open(base, auth)
        assert (await stream.next_data())["type"] == "session.ready"
        assert subscribers() == [1, 1]  # the server's hub follows Bob's groups for the stream
        assert presence.presence_of(user_ids=[bob.pk])[bob.pk]["status"] == "online"
        await in_thread(send_message, room=room, user=ada, content="hi")
        await stream.until(is_message("hi"))
        while stream.pings == 0:  # a quiet stream gets comments (here every second)
            chunk = await stream._chunk()
            stream.buffer += chunk
            stream.pings += chunk.count(b": ping")
        stream.close()
        await asyncio.to_thread(wait_until, lambda: subscribers() == [0, 0], what="the hub to leave the groups")
        await asyncio.to_thread(
            wait_until,
            lambda: presence.presence_of(user_ids=[bob.pk])[bob.pk]["status"] == "offline",
            what="Bob to go offline",
        )

    asyncio.run(scenario())


def test_a_stream_rebases_as_rooms_move_and_every_id_it_wrote_resolves_exactly(transactional_db, make_user):
    user = make_user("bob")
    rooms = sorted(str(uuid.uuid4()) for _ in range(40))

    async def scenario():
        stream = Stream(user)
        stream.position = cursors.Position(cursors.new_stream_id(), 0, dict.fromkeys(rooms, 0))
        await asyncio.to_thread(cursors.store_base, stream.position.stream, 0, dict.fromkeys(rooms, 0))
        for room in rooms:
            stream.cursors[room] = RoomCursor(last=0)
        written = []
        for n, room in enumerate(rooms):
            stream._deliver(room, stream.cursors[room], 1, "{}")
            written.append((n, stream.out[-1][1]))
            await stream.rebase()
        return stream.position.generation, written

    generation, written = asyncio.run(scenario())
    assert generation == 2  # after 17 and 34 rooms moved
    for n, event_id in written:
        assert len(event_id) <= 13 + 17 * 6
        resolved = cursors.resolve(event_id)
        assert resolved is not None and resolved.rooms() == {room: int(i <= n) for i, room in enumerate(rooms)}


def test_a_fresh_stream_says_session_ready_before_what_arrived_while_it_joined(transactional_db, make_user):
    """A frame the hub hands over while a new stream joins its rooms' groups (a room member coming
    online, say) is written after session.ready, not before it (seen once as a flaky test)."""
    ada, bob = make_user("ada"), make_user("bob")
    room = room_create(creator=ada, name="Lobby", kind=Room.Kind.PRIVATE)
    Membership.objects.create(room=room, user=bob)
    online = json.dumps({"type": "presence", "user": ada.pk, "status": "online"})

    async def scenario():
        stream = Stream(bob)
        follow = stream._follow

        async def following(room_id, last):
            await follow(room_id, last)
            await stream.hub_event({"type": "room.relay", "room": room_id, "text": online})

        stream._follow = following
        try:
            await stream.open(None, live=True)
            return [json.loads(text)["type"] for text, _ in stream.take()]
        finally:
            await stream.close()

    assert asyncio.run(scenario())[:2] == ["session.ready", "presence"]


def test_a_stream_whose_client_does_not_read_drops_its_backlog_and_ends(transactional_db, make_user):
    stream = Stream(make_user("bob"))
    for n in range(MAX_PENDING + 1):
        stream._write(f'{{"n":{n}}}')
    assert stream.overflowed and stream.out == []  # bounded memory; the client resumes by its last id


def test_boards_in_a_stream_resume_by_last_event_id_and_an_unseen_board_gets_the_join_error(start_server, make_user):
    ada, bob = make_user("ada"), make_user("bob")
    room = room_create(creator=ada, name="Bridge", kind=Room.Kind.PRIVATE)
    Membership.objects.create(room=room, user=bob)
    board = board_create(user=ada, room_id=room.pk, title="Plan")
    elsewhere = room_create(creator=ada, name="Secret", kind=Room.Kind.PRIVATE)
    hidden = board_create(user=ada, room_id=elsewhere.pk, title="Hidden")
    base = start_server()
    auth = bearer(base, "bob")
    writer = BoardClient()
    sent: dict[int, bytes] = {}

    def edit(n: int) -> None:
        update = sent[n] = writer.edit(f"e{n}", x=n)
        board_update_apply(user=ada, board_id=board.pk, update=update, client_update_id=uuid.uuid4())

    def updates(events: list[dict]) -> list[int]:
        return [e["data"]["sequence"] for e in events if e["data"]["type"] == "board.update"]

    async def scenario():
        for query in ("?boards=nonsense", "?boards=" + ",".join(str(uuid.uuid4()) for _ in range(17))):
            code, body = await asyncio.to_thread(http_get, f"{base}/api/v1/poll/{query}", auth)
            assert (code, body["error"]["code"], list(body["error"]["fields"])) == (400, "invalid", ["boards"])
        sse = await EventStream.open(base, auth, f"?boards={board.pk},{hidden.pk}")
        assert [(await sse.next())["data"]["type"] for _ in range(2)] == ["session.ready", "board.state"]
        refused = await sse.next()  # as a socket's board.join of it: not_found, and the stream goes on
        assert refused["data"] == {
            "type": "error",
            "code": "not_found",
            "message": "Not found.",
            "ref": None,
            "board": str(hidden.pk),
        }
        await in_thread(edit, n=1)
        await in_thread(edit, n=2)
        seen = [await sse.next_numbered(), await sse.next_numbered()]
        assert updates(seen) == [1, 2]
        sse.close()  # the client got 2, but its id was lost with the connection: it resumes after 1
        await in_thread(edit, n=3)  # while away
        resumed = await EventStream.open(base, auth | {"Last-Event-ID": seen[0]["id"]}, f"?boards={board.pk}")
        caught_up = [await resumed.next_numbered(), await resumed.next_numbered()]
        assert updates(caught_up) == [2, 3]
        assert caught_up[1]["data"]["update"] == b64(sent[3])
        await in_thread(edit, n=4)
        assert updates([await resumed.next_numbered()]) == [4]  # then live, nothing repeated
        resumed.close()

    asyncio.run(scenario())


def test_a_message_sent_while_a_stream_joins_its_rooms_reaches_it_without_waiting_for_the_next(
    transactional_db, make_user, monkeypatch
):
    """A live stream reads its rooms' numbers, then joins their groups. A message committed in
    between is published to no stream of this process; the stream must still write it at once,
    not only when the room's next change reveals the hole (as a socket: tests/test_consumer.py)."""
    from transports import streams

    ada, bob = make_user("ada"), make_user("bob")
    room = room_create(creator=ada, name="Room", kind="private")
    Membership.objects.create(room=room, user=bob, role="member")
    read_state = streams._open_state

    def state_then_a_message(user_id, position):
        state = read_state(user_id, position)
        send_message(room, bob, "between")
        return state

    monkeypatch.setattr(streams, "_open_state", state_then_a_message)

    async def scenario() -> list[dict]:
        stream = Stream(ada)
        try:
            await stream.open(None, live=True)
            return [json.loads(text) for text, _ in stream.out]
        finally:
            await stream.close()

    frames = asyncio.run(scenario())
    assert frames[0]["type"] == "session.ready" and frames[0]["rooms"][str(room.pk)] == 0
    assert [(f["sequence"], f["message"]["content"]) for f in frames if f["type"] == "message.new"] == [(1, "between")]
