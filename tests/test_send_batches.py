"""Batched sends: many messages in one statement and one commit, each with its own result.

The socket path (amessage_send_many, on the event loop) and the REST path (message_send_many,
through Django's connection) run the same statement and rules; every case runs through both.
"""

import asyncio
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.db import connection, connections, transaction
from django.utils import timezone

from core.errors import ApplicationError
from core.hub import get_hub
from messaging import consumers, services
from messaging.models import Message, SentMessageKey
from messaging.services import amessage_send_many, message_send, message_send_many
from rooms.models import Membership, Room
from rooms.services import room_create
from tests.conftest import lock_waiters, room_held, wait_until
from tests.sockets import TIMEOUT, connect, receive_type

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["sync", "async"])
def send_many(request):
    if request.param == "sync":
        return lambda requests: message_send_many(requests=requests)
    return lambda requests: async_to_sync(amessage_send_many)(requests=requests)


def outcome(result) -> str:
    if isinstance(result, ApplicationError):
        return result.code
    message, created = result
    return f"{'new' if created else 'replay'} #{message.sequence}"


def test_one_batch_gives_each_request_its_own_result(make_user, send_many):
    ada, bob, vic, eve = (make_user(name) for name in ("ada", "bob", "vic", "eve"))
    plans = room_create(creator=ada, name="Plans", kind="private")
    lobby = room_create(creator=ada, name="Lobby", kind="public")
    Membership.objects.create(room=plans, user=bob)
    Membership.objects.create(room=plans, user=vic, role=Membership.Role.VIEWER)
    Membership.objects.create(room=lobby, user=bob)
    earlier, _ = message_send(user=bob, room_id=plans.pk, content="earlier", client_msg_id=uuid.uuid4())
    repeated = uuid.uuid4()

    def send(user, room, content="hi", key=None):
        return {"user": user, "room_id": room, "content": content, "client_msg_id": key or uuid.uuid4()}

    results = send_many(
        [
            send(ada, plans.pk),  # new
            send(bob, plans.pk, key=earlier.client_msg_id),  # a resend of an earlier message
            send(vic, plans.pk),  # viewers read only
            send(eve, plans.pk),  # an outsider: the private room does not exist for her
            send(eve, lobby.pk),  # a public room she has not joined
            send(ada, lobby.pk),  # new, in another room
            send(ada, plans.pk, content="   "),  # blank
            send(ada, uuid.uuid4()),  # no such room
            send(bob, plans.pk, key=repeated),  # new...
            send(bob, plans.pk, key=repeated),  # ...and the same key again in the same batch: a replay
            send(bob, lobby.pk, key=earlier.client_msg_id),  # a key already used in another room
            send(ada, plans.pk, content="x" * 4001),  # too long
            send(bob, plans.pk),  # new
        ]
    )
    assert [outcome(result) for result in results] == [
        "new #2",
        "replay #1",
        "forbidden",
        "not_found",
        "not_member",
        "new #1",
        "invalid",
        "not_found",
        "new #3",
        "replay #3",
        "client_msg_id_reused",
        "too_large",
        "new #4",
    ]
    assert results[1][0].id == earlier.id and results[1][0].content == "earlier"
    assert results[9][0].id == results[8][0].id
    # Exactly the new messages were stored, gapless, each with its idempotency key.
    assert list(Message.objects.filter(room=plans).order_by("sequence").values_list("sequence", flat=True)) == [
        1,
        2,
        3,
        4,
    ]
    assert Room.objects.get(pk=plans.pk).last_sequence == 4
    assert Room.objects.get(pk=lobby.pk).last_sequence == 1
    assert SentMessageKey.objects.count() == 5


def test_replies_in_one_batch_change_their_root_once_numbered_after_the_messages(make_user, send_many, events):
    """Replies go in the send statement too: a batch with replies to one thread (one of them to a
    reply, which joins the root's thread) and a plain message numbers the messages first and then
    the root's one change (its count and last reply time), gapless, announced in number order."""
    ada, bob = make_user("ada"), make_user("bob")
    room = room_create(creator=ada, name="Threads")
    Membership.objects.create(room=room, user=bob)
    root, _ = message_send(user=ada, room_id=room.pk, content="root", client_msg_id=uuid.uuid4())
    first, _ = message_send(user=bob, room_id=room.pk, content="r1", client_msg_id=uuid.uuid4(), reply_to=root.id)
    assert (first.reply_to, Room.objects.get(pk=room.pk).last_sequence) == (root.id, 3)  # root changed at 3
    events.clear()

    def send(user, content, reply_to=None):
        request = {"user": user, "room_id": room.pk, "content": content, "client_msg_id": uuid.uuid4()}
        return request | ({"reply_to": reply_to} if reply_to else {})

    results = send_many(
        [send(ada, "r2", root.id), send(bob, "plain"), send(ada, "r3", first.id), send(bob, "r?", uuid.uuid4())]
    )

    assert [outcome(r) for r in results] == ["new #4", "new #5", "new #6", "not_found"]
    assert [r[0].reply_to for r in results[:3]] == [root.id, None, root.id]
    stored = Message.objects.get(pk=root.pk)
    assert (stored.reply_count, stored.changed_sequence, stored.change_kind) == (3, 7, "thread")
    assert stored.last_reply_at == results[2][0].created_at
    assert Room.objects.get(pk=room.pk).last_sequence == 7
    changes = [e.event for e in events.of_type("room.sequenced")]
    assert [e["seq"] for e in changes] == [4, 5, 6, 7]
    last = json.loads(changes[-1]["text"])
    assert (last["type"], last["message"]["id"], last["message"]["reply_count"]) == ("message.update", str(root.id), 3)
    assert last["message"]["sender"]["username"] == "ada"


def test_stored_rows_match_what_the_batch_returned(make_user, send_many):
    ada = make_user()
    room = room_create(creator=ada, name="Rows")
    results = send_many(
        [{"user": ada, "room_id": room.pk, "content": f"line {i}", "client_msg_id": uuid.uuid4()} for i in range(30)]
    )
    returned = [(m.id, m.sequence, m.content, m.created_at, m.client_msg_id) for m, _ in results]
    stored = list(
        Message.objects.filter(room=room)
        .order_by("sequence")
        .values_list("id", "sequence", "content", "created_at", "client_msg_id")
    )
    assert returned == stored
    assert [sequence for _, sequence, *_ in stored] == list(range(1, 31))


def test_batches_racing_for_one_key_keep_one_message_and_no_hole(make_user, send_many, monkeypatch):
    """Several batches at once, each with a message of its own and the same new key: the key
    gets one message, every other message is kept, and the room's numbers have no hole (a batch
    that lost the race failed on the key's constraint, was rolled back whole and sent again)."""
    ada = make_user("ada")
    room = room_create(creator=ada, name="Race")
    contested, racers = uuid.uuid4(), 6
    lost = []
    advance = services._advance

    def counting(batches, rows):
        if services._key_taken(rows):  # the statement failed on the key's constraint
            lost.append(1)
        return advance(batches, rows)

    monkeypatch.setattr(services, "_advance", counting)

    def race(n):
        try:
            own = {"user": ada, "room_id": room.pk, "content": f"own {n}", "client_msg_id": uuid.uuid4()}
            both = {"user": ada, "room_id": room.pk, "content": "contested", "client_msg_id": contested}
            return send_many([own, both])
        finally:
            connections.close_all()

    with ThreadPoolExecutor(racers) as pool:
        # Every batch reads the keys, then queues on the room's lock held here: all but the
        # first to get it then meet the key the first one committed.
        with transaction.atomic():
            Room.objects.select_for_update().get(pk=room.pk)
            futures = [pool.submit(race, n) for n in range(racers)]
            wait_until(lambda: lock_waiters() == racers, what=f"{racers} sends queuing on the room's lock")
        results = [future.result() for future in futures]

    assert lost, "no batch met the concurrent key: the race did not happen"
    assert sorted(outcome(own)[:3] for own, _ in results) == ["new"] * racers
    assert len({both[0].id for _, both in results}) == 1
    assert sum(both[1] for _, both in results) == 1
    stored = list(Message.objects.filter(room=room).order_by("sequence").values_list("sequence", "content"))
    assert [sequence for sequence, _ in stored] == list(range(1, racers + 2))
    assert sum(content == "contested" for _, content in stored) == 1
    assert SentMessageKey.objects.filter(client_msg_id=contested).count() == 1


@pytest.mark.asyncio
async def test_socket_batches_publish_each_change_once_after_commit(make_user, events):
    """The async path publishes after its own commit: a hub member in the room gets every new
    message exactly once, in number order."""
    ada = await database_sync_to_async(make_user)()
    room = await database_sync_to_async(room_create)(creator=ada, name="Live")
    group = f"room.{room.pk}"
    received: list[dict] = []
    marker_arrived = asyncio.Event()

    class Listener:
        async def hub_event(self, event):
            received.append(event)
            if event["type"] == "test.marker":
                marker_arrived.set()

    listener = Listener()
    hub = get_hub()
    await hub.join(group, listener)
    requests = [{"user": ada, "room_id": room.pk, "content": f"m{i}", "client_msg_id": uuid.uuid4()} for i in range(5)]
    await amessage_send_many(requests=requests)
    await amessage_send_many(requests=requests[:2])  # resends: nothing more is published
    assert [e.event["seq"] for e in events.of_type("room.sequenced")] == [1, 2, 3, 4, 5]
    # This process's hub got each event at once; Redis brings it back too, and the hub must drop
    # that copy. A marker sent through Redis after them arrives after every copy.
    hub.bus.publish([(group, {"type": "test.marker", "group": group})])  # queued behind them, not ours
    await asyncio.wait_for(marker_arrived.wait(), 5)
    await hub.leave(group, listener)
    assert [event.get("seq") for event in received] == [1, 2, 3, 4, 5, None]
    assert hub.groups == {}


def test_a_send_looks_keys_up_by_index_however_many_there_are(make_user):
    """The plan of the send statement for a one-message batch, with 10,000 keys already sent:
    the key is an index lookup, never a scan of the whole table (as a plain join, the planner
    hashed the key table on every batch, so sends slowed down as it grew)."""
    ada = make_user("ada")
    room = room_create(creator=ada, name="Plans", kind="private")
    now = timezone.now()
    SentMessageKey.objects.bulk_create(
        SentMessageKey(
            sender=ada, client_msg_id=uuid.uuid4(), room=room, message_id=uuid.uuid4(), message_created_at=now
        )
        for _ in range(10_000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE messaging_sentmessagekey")
        send = {
            "idx": 0,
            "user_id": ada.pk,
            "room_id": str(room.pk),
            "client_msg_id": str(uuid.uuid4()),
            "content": "hi",
            "message_id": str(uuid.uuid4()),
        }
        cursor.execute("EXPLAIN " + services._SEND, [json.dumps([send]), timezone.now()])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan on messaging_sentmessagekey" not in plan


def test_a_send_holding_its_room_does_not_block_rows_that_only_reference_the_room(make_user):
    """The send statement and the reaction statement lock the room FOR NO KEY UPDATE: they
    serialise the room's numbered writers, but an insert that merely references the room (its
    foreign-key check takes FOR KEY SHARE: a notification, a pending row, a membership) does not
    wait for their commit. With FOR UPDATE the notification statement queued behind every batch
    of its room (docs/performance.md, issue 16's mix)."""
    ada = make_user("ada")
    room = room_create(creator=ada, name="Plans", kind="private")
    message, _ = message_send(user=ada, room_id=room.pk, content="hi", client_msg_id=uuid.uuid4())
    other = connections.create_connection("default")
    try:
        for write in (
            lambda: message_send(user=ada, room_id=room.pk, content="held", client_msg_id=uuid.uuid4()),
            lambda: services.reaction_set(user=ada, room_id=room.pk, message_id=message.id, emoji="👍", present=True),
        ):
            with transaction.atomic():
                write()  # its statement ran; the room's lock is held until this block commits
                with other.cursor() as cursor:  # NOWAIT: fails at once if it would have to wait
                    cursor.execute("SELECT 1 FROM rooms_room WHERE id = %s FOR KEY SHARE NOWAIT", [room.pk])
                    assert cursor.fetchone() == (1,)
                    other.commit()
                    with pytest.raises(Exception, match="could not obtain lock"):  # writers still queue
                        cursor.execute("SELECT 1 FROM rooms_room WHERE id = %s FOR NO KEY UPDATE NOWAIT", [room.pk])
                    other.rollback()
    finally:
        other.close()


@pytest.mark.asyncio
async def test_a_sockets_burst_of_sends_goes_in_one_batch_and_is_acked_in_order(make_user, monkeypatch):
    """A client flushing its outbox (a reconnect after messages were written offline) sends them
    back to back: the socket reads on while its sends wait for their batch, so they go together,
    not one round trip each, and their acks come in the order of the frames."""
    ada = await database_sync_to_async(make_user)()
    room = str((await database_sync_to_async(room_create)(creator=ada, name="Outbox")).pk)
    socket, _ = await connect(ada)
    batches = consumers.write_batches()
    sizes: list[int] = []
    run = batches.run

    async def counting(requests):
        sizes.append(len(requests))
        return await run(requests)

    monkeypatch.setattr(batches, "run", counting)
    keys = [str(uuid.uuid4()) for _ in range(20)]
    queued, put = asyncio.Event(), batches.put

    def queue(request):
        future = put(request)
        if len(batches.waiting) == len(keys) - 1:
            queued.set()  # all but the first read and queued while the first waits
        return future

    monkeypatch.setattr(batches, "put", queue)
    frames = [
        {"type": "message.send", "room": room, "content": f"m{n}", "client_msg_id": key} for n, key in enumerate(keys)
    ]
    async with room_held(room) as holder:
        await socket.send_json_to(frames[0])
        await database_sync_to_async(wait_until)(lambda: lock_waiters() == 1, what="the first send waiting")
        for frame in frames[1:]:
            await socket.send_json_to(frame)
        async with asyncio.timeout(TIMEOUT):
            await queued.wait()
        await holder.commit()

    acks = [await receive_type(socket, "message.ack") for _ in keys]
    assert [ack["client_msg_id"] for ack in acks] == keys
    assert [ack["message"]["sequence"] for ack in acks] == list(range(1, len(keys) + 1))
    assert sizes == [1, len(keys) - 1]
    await socket.disconnect(timeout=TIMEOUT)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("failure", "code", "logged"),
    [
        (redis.exceptions.ConnectionError("Redis is away"), "unavailable", "WARNING"),
        (RuntimeError("a bug"), "internal", "ERROR"),
    ],
)
async def test_a_batch_that_raises_answers_each_of_its_frames(monkeypatch, caplog, failure, code, logged):
    """Past the database's own errors (which awrite_many answers per frame), an outage (Redis
    away when the events go out) answers `unavailable` with a one-line warning, and a bug
    `internal` with its traceback, to every frame of the batch."""

    async def failing(**kwargs):
        raise failure

    monkeypatch.setattr(services, "awrite_many", failing)
    results = await consumers._write([("send", {}), ("react", {}), ("send", {})])
    assert [result.code for result in results] == [code] * 3
    (record,) = [r for r in caplog.records if r.name == "messaging.consumers"]
    assert record.levelname == logged and (record.exc_info is not None) == (logged == "ERROR")
