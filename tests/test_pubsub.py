"""core.pubsub against a real Redis: order per group across shards, reconnecting at once after the
connection is lost, catching sockets up on what the outage lost, and never making a write wait
for Redis."""

import asyncio
import uuid

import msgpack
import pytest
import redis
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections

from core import events as core_events
from core.hub import get_hub
from core.pubsub import Bus, publish_once
from messaging.services import message_send
from rooms.services import room_create
from tests.conftest import receive_types
from tests.sockets import connect, receive_type

TIMEOUT = 5


def _admin() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


async def _until(condition, timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_every_group_gets_its_events_in_order_across_shards():
    base = settings.REDIS_URL.rsplit("/", 1)[0]
    urls = [f"{base}/0", f"{base}/1"]
    received: dict[str, list[int]] = {}

    async def on_event(event):
        received.setdefault(event["group"], []).append(event["n"])

    listener = Bus(urls, on_event=on_event, on_reconnect=lambda groups: asyncio.sleep(0))
    sender = Bus(urls, on_event=on_event, on_reconnect=lambda groups: asyncio.sleep(0))
    groups = [f"room.{uuid.UUID(int=n)}" for n in range(8)]
    for group in groups:
        await listener.subscribe(group)
    await asyncio.gather(listener.ready(), sender.ready())
    assert {listener._shard(group).url for group in groups} == set(urls)  # both shards in use

    sender.publish([(groups[n % 8], {"group": groups[n % 8], "n": n}) for n in range(1000)])
    await _until(lambda: sum(map(len, received.values())) == 1000)

    assert {group: numbers for group, numbers in received.items()} == {
        group: [n for n in range(1000) if n % 8 == index] for index, group in enumerate(groups)
    }
    await asyncio.gather(listener.close(), sender.close())


@pytest.mark.asyncio
async def test_a_lost_connection_is_back_at_once_resubscribed_and_reported():
    received, reconnects = [], []

    async def on_reconnect(groups):
        reconnects.append(sorted(groups))

    async def on_event(event):
        received.append(event["n"])

    bus = Bus([settings.REDIS_URL], on_event=on_event, on_reconnect=on_reconnect)
    await bus.subscribe("room.a")
    await bus.subscribe("user.7")
    await bus.ready()

    killed = _admin().client_kill_filter(_type="pubsub")
    await _until(lambda: reconnects)
    await publish_once([settings.REDIS_URL], [("room.a", {"n": 1})])
    await _until(lambda: received)

    assert killed == 1
    assert reconnects == [["room.a", "user.7"]]
    assert received == [1]
    await bus.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_sockets_get_what_an_outage_lost_as_soon_as_redis_is_back(make_user):
    """Another process's message published while this process's connection to Redis was down is
    lost to pub/sub; it reaches the socket right after the reconnect, without waiting for the
    room's next event."""
    ada, bob = await database_sync_to_async(lambda: (make_user("ada"), make_user("bob")))()
    room = await database_sync_to_async(room_create)(creator=ada, name="Outage")
    await database_sync_to_async(lambda: room.memberships.create(user=bob))()
    socket, _ = await connect(bob)
    shard = get_hub().bus.shards[0]
    await get_hub().bus.ready()
    url, shard.url = shard.url, "redis://127.0.0.1:9"  # nothing listens there: Redis is "down"
    _admin().client_kill_filter(_type="pubsub")
    await _until(lambda: not shard.connected.is_set())

    def send_from_elsewhere():  # a sync service off this loop: it publishes straight to Redis
        try:
            message_send(user=ada, room_id=room.pk, content="while you were away", client_msg_id=uuid.uuid4())
        finally:
            connections.close_all()

    await asyncio.to_thread(send_from_elsewhere)
    shard.url = url  # Redis is back

    frame = await receive_type(socket, "message.new")
    assert frame["message"]["content"] == "while you were away" and frame["sequence"] == 1
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_frozen_redis_holds_back_no_send_and_no_local_delivery(make_user):
    ada = await database_sync_to_async(make_user)("ada")
    room = await database_sync_to_async(room_create)(creator=ada, name="Frozen")
    socket, _ = await connect(ada)
    await get_hub().bus.ready()
    # Warm up (the day's partitions, this loop's database connection): what is measured is Redis.
    await socket.send_json_to(
        {"type": "message.send", "room": str(room.pk), "content": "warm", "client_msg_id": str(uuid.uuid4())}
    )
    await receive_type(socket, "message.ack")
    _admin().execute_command("CLIENT", "PAUSE", "3000", "ALL")  # Redis accepts but answers nothing
    try:
        await socket.send_json_to(
            {"type": "message.send", "room": str(room.pk), "content": "still fast", "client_msg_id": str(uuid.uuid4())}
        )
        async with asyncio.timeout(1.5):  # well inside the pause
            frames = await receive_types(socket, "message.ack", "message.new")  # in either order
    finally:
        _admin().execute_command("CLIENT", "UNPAUSE")
    assert frames["message.ack"]["message"]["content"] == frames["message.new"]["message"]["content"] == "still fast"
    await socket.disconnect()


@pytest.mark.asyncio
async def test_the_bus_closes_even_if_a_handler_swallows_its_cancellation():
    """asgiref's sync_to_async (and so a consumer handler that reads the database) can swallow the
    CancelledError of the task it runs in. The reader then went on listening, cancelled but never
    ending, and the shutdown of its loop (a server's, or a test's teardown) waited forever."""
    handling = asyncio.Event()

    async def on_event(event):
        handling.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return  # swallowed, as asgiref does when the thread's work ends normally

    bus = Bus([settings.REDIS_URL], on_event=on_event, on_reconnect=lambda groups: asyncio.sleep(0))
    await bus.subscribe("room.swallow")
    await bus.ready()
    await publish_once([settings.REDIS_URL], [("room.swallow", {"n": 1})])
    async with asyncio.timeout(TIMEOUT):
        await handling.wait()
    async with asyncio.timeout(TIMEOUT):  # ends at once; hung before
        await bus.close()
    assert all(task.done() for shard in bus.shards for task in shard.tasks)


@pytest.mark.asyncio
async def test_joins_made_together_go_to_redis_in_one_command_and_in_the_order_asked(monkeypatch):
    """A connection storm: many sockets join their groups at once. Their subscriptions go to Redis
    together, a few SUBSCRIBE commands of many channels instead of one command (and one wait)
    each; and a group left and joined again meanwhile ends subscribed, one joined and left ends not."""
    from redis.asyncio.client import PubSub

    sent: list[tuple[str, int]] = []
    subscribe, unsubscribe = PubSub.subscribe, PubSub.unsubscribe

    async def counting_subscribe(self, *channels, **kwargs):
        sent.append(("subscribe", len(channels)))
        return await subscribe(self, *channels, **kwargs)

    async def counting_unsubscribe(self, *channels):
        sent.append(("unsubscribe", len(channels)))
        return await unsubscribe(self, *channels)

    async def ignore(_) -> None:  # no event is published here, and no reconnect happens
        return None

    bus = Bus([settings.REDIS_URL], on_event=ignore, on_reconnect=ignore)
    await bus.ready()
    monkeypatch.setattr(PubSub, "subscribe", counting_subscribe)
    monkeypatch.setattr(PubSub, "unsubscribe", counting_unsubscribe)
    groups = [f"user.{n}" for n in range(50)]
    try:
        await asyncio.gather(*(bus.subscribe(group) for group in groups))
        assert sum(count for command, count in sent if command == "subscribe") == 50
        assert len(sent) < 50

        await asyncio.gather(
            bus.unsubscribe("user.0"), bus.subscribe("user.0"), bus.subscribe("user.gone"), bus.unsubscribe("user.gone")
        )
        wanted = {f"parley.bus.{group}".encode() for group in groups}
        await _until(lambda: set(_admin().pubsub_channels("parley.bus.user.*")) == wanted)
    finally:
        await bus.close()


def _watch(channel: str) -> redis.client.PubSub:
    """A blocking subscriber of its own: read on the test's thread, it holds the event loop, so it
    sees only what was written to Redis before it was asked."""
    watcher = _admin().pubsub()
    watcher.subscribe(channel)
    assert watcher.get_message(timeout=TIMEOUT)["type"] == "subscribe"
    return watcher


async def _ignore(_) -> None:
    return None


@pytest.mark.asyncio
async def test_a_published_event_is_on_the_wire_after_one_pass_of_the_loop():
    """The writer writes in its first step after publish() wakes it: nothing it awaits first. (A
    redis-py pipeline polled the connection before writing, a pass of the loop more: this failed.)"""
    bus = Bus([settings.REDIS_URL], on_event=_ignore, on_reconnect=_ignore)
    await bus.ready()
    watcher = _watch("parley.bus.room.wire")
    bus.publish([("room.wire", {"n": 0})])  # the writer connects: that takes passes of the loop
    first = await asyncio.to_thread(watcher.get_message, timeout=TIMEOUT)
    assert msgpack.unpackb(first["data"]) == {"n": 0}

    bus.publish([("room.wire", {"n": 1}), ("room.wire", {"n": 2})])
    await asyncio.sleep(0)  # one pass: the writer's step
    written = [watcher.get_message(timeout=TIMEOUT) for _ in range(2)]  # the loop is held meanwhile

    assert [msgpack.unpackb(message["data"]) for message in written if message] == [{"n": 1}, {"n": 2}]
    watcher.close()
    await bus.close()


@pytest.mark.asyncio
async def test_the_other_processes_copy_is_written_before_this_process_delivers_its_own():
    """core.events queues an event for Redis and lets the writer write it before this process's
    sockets get it: they would otherwise go first, and with them the rest of the publishing task's
    work, while the other processes' sockets wait."""
    hub = get_hub()
    await hub.bus.ready()
    group = f"room.{uuid.uuid4()}"
    watcher = _watch(f"parley.bus.{group}")
    on_the_wire: list = []

    class Local:
        async def hub_event(self, event: dict) -> None:
            on_the_wire.append(watcher.get_message(timeout=TIMEOUT))  # holds the loop: only what is written

    local = Local()
    await hub.join(group, local)
    hub.bus.publish([(group, {"n": 0})])  # the writer connected, as in a running server
    assert msgpack.unpackb((await asyncio.to_thread(watcher.get_message, timeout=TIMEOUT))["data"]) == {"n": 0}

    await core_events._publish([([group], {"type": "probe", "n": 1})])

    assert len(on_the_wire) == 1 and on_the_wire[0] is not None
    assert msgpack.unpackb(on_the_wire[0]["data"])["n"] == 1
    await hub.leave(group, local)
    watcher.close()
