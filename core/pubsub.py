"""Events between server processes: Redis pub/sub, one subscription per group per process.

Each server process has one `Bus` (owned by its hub, core.hub). A group (`room.<id>`, `user.<id>`)
is a Redis channel on one of the REDIS_CHANNEL_URLS shards (by a hash of its name, the same in
every process). Per shard the bus keeps:

- a reader: one pub/sub connection subscribed to every group the process's sockets need. It
  reconnects on its own, at once and then every RECONNECT_MAX_SECONDS at most, and resubscribes;
  a Redis that accepts but stops answering is noticed by a PING after IDLE_PING_SECONDS of
  silence that gets no PONG within PONG_TIMEOUT_SECONDS. After a reconnect it calls
  `on_reconnect(groups)`: events published meanwhile were lost, and the hub has the sockets of
  those groups catch up from PostgreSQL (messaging.consumers).
- a writer: publishes queued events in order, all that are waiting in one write of PUBLISH
  commands on its own connection, then reads their replies. Publishing never waits for Redis:
  `publish()` queues and returns, so a slow, frozen or absent Redis never holds back a database
  write, an ack or this process's own sockets (the hub delivers to those itself). Events that
  cannot be published within PUBLISH_TIMEOUT_SECONDS are dropped and logged. The write goes out
  in the writer's first step after `publish()` wakes it: a redis-py pipeline would first poll its
  connection with a zero timeout (a pass of the event loop, which under load is milliseconds of
  other sockets' work), and a connection with a socket timeout writes through asyncio.wait_for (a
  task of its own: another pass). Half the deliveries of a two-process server wait on this
  (docs/performance.md, "Events to the other processes"). That redis-py's `Connection` writes
  without awaiting anything first is what tests/test_pubsub.py::
  test_a_published_event_is_on_the_wire_after_one_pass_of_the_loop checks (redis is pinned in
  requirements.txt): re-run it when bumping redis.

Pub/sub is at-most-once like every channel layer: the sequences in PostgreSQL are what make
delivery complete (clients and sockets fill gaps; see docs/protocol.md).

This replaces channels-redis' pub/sub layer (issue 12 measured it against a cut Redis: after
Redis returned, sockets got live events 9-14 s late): its subscriber came back only after
redis-py's retry back-off, it had no reconnect hook to fill what was lost, and a publish to a
frozen Redis held its shard lock, and with it every send of the process. tests/test_pubsub.py
covers each of these against a real Redis; the fault suite (docs/reliability.md) across processes.
"""

import asyncio  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
import itertools
import logging
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import msgpack
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core import metrics
from core.batches import Batches

logger = logging.getLogger(__name__)

PREFIX = "parley.bus."
RECONNECT_MAX_SECONDS = 0.5
IDLE_PING_SECONDS = 2.0
PONG_TIMEOUT_SECONDS = 2.0
PUBLISH_TIMEOUT_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 2.0
MAX_QUEUED = 20_000  # events waiting for Redis; beyond, the oldest are dropped
# Always subscribed, so a process with no sockets still holds a live connection to watch.
_CONTROL = PREFIX + "control"


def _client(url: str) -> aioredis.Redis:
    # No retries inside redis-py: a failure surfaces at once and the loops below decide.
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=PUBLISH_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


def _connection(url: str) -> AbstractConnection:
    """The writer's one connection. No socket timeout of its own: redis-py would then write
    through asyncio.wait_for, a task and a pass of the event loop per write; the writer bounds
    each batch with PUBLISH_TIMEOUT_SECONDS itself."""
    pool = aioredis.ConnectionPool.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS, retry=Retry(NoBackoff(), 0), health_check_interval=0
    )
    return pool.make_connection()


class _Shard:
    def __init__(self, bus: "Bus", url: str) -> None:
        self.bus = bus
        self.url = url
        self.channels: set[str] = {_CONTROL}  # what we want; the reader makes Redis agree
        self.pubsub: Any = None  # the reader's, while connected
        self.queue: deque[tuple[str, bytes]] = deque()
        self.queued = asyncio.Event()
        self.connected = asyncio.Event()
        self.commands: Batches[tuple[str, str], None] = Batches(self._tell)
        self.tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._write())]

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)
        if not self.connected.is_set():  # just started (or Redis is away: then not for long)
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                    await self.connected.wait()
            except TimeoutError:
                return  # subscribed when the reader connects; catch-up covers the meantime
        await self.commands.submit(("subscribe", channel))

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        await self.commands.submit(("unsubscribe", channel))

    async def _tell(self, commands: list[tuple[str, str]]) -> list[None]:
        """Send the (un)subscriptions asked for meantime (core.batches), in order, a run of the
        same command as one SUBSCRIBE or UNSUBSCRIBE of many channels: a connection storm's
        sockets join their groups in a few commands, not a command (and a wait) each. Each
        channel goes as self.channels now says (a channel left again before its SUBSCRIBE went
        is not subscribed)."""
        pubsub = self.pubsub
        if pubsub is not None:  # else the reader subscribes to all of self.channels when it connects
            for command, run in itertools.groupby(commands, key=lambda item: item[0]):
                wanted = command == "subscribe"
                channels = list(dict.fromkeys(channel for _, channel in run if (channel in self.channels) == wanted))
                if not channels:
                    continue
                try:
                    await getattr(pubsub, command)(*channels)
                except Exception as error:  # the reader notices too, reconnects and resubscribes
                    logger.warning("could not %s %s channels: %s", command, len(channels), error)
        return [None] * len(commands)

    async def _read(self) -> None:
        delay, outage = 0.0, False
        while True:
            _raise_if_cancelled()
            client = _client(self.url)
            try:
                pubsub = client.pubsub()
                wanted = set(self.channels)
                await pubsub.subscribe(*wanted)
                self.pubsub = pubsub
                # Joins and leaves while we subscribed: from now on they reach Redis themselves.
                if self.channels - wanted:
                    await pubsub.subscribe(*(self.channels - wanted))
                if wanted - self.channels:
                    await pubsub.unsubscribe(*(wanted - self.channels))
                self.connected.set()
                if outage:
                    logger.warning("Redis %s is back: resubscribed to %s groups", self.url, len(self.channels))
                    metrics.BUS_RECONNECTS.inc()
                    outage = False
                    await self.bus.reconnected(
                        [channel[len(PREFIX) :] for channel in self.channels if channel != _CONTROL]
                    )
                delay = 0.0
                await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not outage:
                    logger.warning("lost Redis %s for events: %s", self.url, error)
                outage = True
            finally:
                self.pubsub = None
                self.connected.clear()
                await _close(client)
            await asyncio.sleep(delay)
            delay = min(RECONNECT_MAX_SECONDS, max(0.05, delay * 2))

    async def _listen(self, pubsub: Any) -> None:
        loop = asyncio.get_running_loop()
        heard = loop.time()
        pinged: float | None = None
        while True:
            _raise_if_cancelled()  # this loop may never reach _read's check (see there)
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=IDLE_PING_SECONDS / 2)
            now = loop.time()
            if message is not None:
                heard, pinged = now, None
                if message["type"] == "message" and message["channel"] != _CONTROL.encode():
                    await self.bus.received(msgpack.unpackb(message["data"]))
            elif pinged is None and now - heard >= IDLE_PING_SECONDS:
                await pubsub.ping()
                pinged = now
            elif pinged is not None and now - pinged >= PONG_TIMEOUT_SECONDS:
                raise TimeoutError(f"no answer to a PING in {PONG_TIMEOUT_SECONDS}s")

    async def _write(self) -> None:
        connection: AbstractConnection | None = None
        try:
            while True:
                _raise_if_cancelled()
                await self.queued.wait()
                self.queued.clear()
                while self.queue:
                    _raise_if_cancelled()
                    batch = [self.queue.popleft() for _ in range(min(len(self.queue), 1000))]
                    try:
                        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                            if connection is None:
                                connection = _connection(self.url)
                                await connection.connect()
                            # Written in this step of the task, without polling the socket first
                            # (a redis-py pipeline's health poll costs a pass of the event loop
                            # before every write): the replies are read after.
                            await connection.send_packed_command(
                                connection.pack_commands([(b"PUBLISH", channel, data) for channel, data in batch]),
                                check_health=False,
                            )
                            for _ in batch:
                                await connection.read_response()
                    except asyncio.CancelledError:
                        raise
                    except Exception as error:  # sockets elsewhere catch up from PostgreSQL
                        logger.warning("dropped %s events: Redis %s: %s", len(batch), self.url, error)
                        metrics.DROPPED["redis"].inc(len(batch))
                        if connection is not None:
                            await _close(connection)
                        connection = None
        finally:
            if connection is not None:
                await _close(connection)

    def publish(self, channel: str, data: bytes) -> None:
        if len(self.queue) >= MAX_QUEUED:
            self.queue.popleft()
            logger.warning("dropped an event: %s events wait for Redis %s", MAX_QUEUED, self.url)
            metrics.DROPPED["queue_full"].inc()
        self.queue.append((channel, data))
        self.queued.set()


def _raise_if_cancelled() -> None:
    """Stop a loop whose task was cancelled even if something on the way swallowed the
    CancelledError (seen with redis-py on Python 3.11: a cancelled task went back to waiting and
    never ended, which hung the shutdown of its event loop)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _close(client: aioredis.Redis | AbstractConnection) -> None:
    """Close a client (the reader's, publish_once's) or the writer's connection, within 1 s."""
    try:
        async with asyncio.timeout(1.0):
            if isinstance(client, AbstractConnection):
                await client.disconnect(nowait=True)
            else:
                await client.aclose()
    except Exception:  # already broken: nothing to close cleanly
        logger.debug("closing a Redis connection failed", exc_info=True)


def _encode(event: dict) -> bytes:
    return msgpack.packb(event)


def _shard_of(group: str, count: int) -> int:
    return zlib.crc32(group.encode()) % count


async def publish_once(urls: list[str], sends: Iterable[tuple[str, dict]]) -> None:
    """Publish from a loop that has no bus (a Celery task, a script, a test without sockets): one
    short-lived connection per shard, awaited."""
    by_shard: dict[str, list[tuple[str, dict]]] = {}
    for group, event in sends:
        by_shard.setdefault(urls[_shard_of(group, len(urls))], []).append((group, event))
    for url, items in by_shard.items():
        client = _client(url)
        try:
            pipe = client.pipeline(transaction=False)
            for group, event in items:
                pipe.publish(PREFIX + group, _encode(event))
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                await pipe.execute()
            metrics.published(len(items))
        finally:
            await _close(client)


class Bus:
    """Publish events to groups; receive the events of the groups subscribed to."""

    def __init__(
        self,
        urls: Iterable[str],
        *,
        on_event: Callable[[dict], Awaitable[None]],
        on_reconnect: Callable[[list[str]], Awaitable[None]],
    ) -> None:
        self.on_event = on_event
        self.on_reconnect = on_reconnect
        self.shards = [_Shard(self, url) for url in urls]

    def _shard(self, group: str) -> _Shard:
        return self.shards[_shard_of(group, len(self.shards))]

    async def subscribe(self, group: str) -> None:
        await self._shard(group).subscribe(PREFIX + group)

    async def unsubscribe(self, group: str) -> None:
        await self._shard(group).unsubscribe(PREFIX + group)

    def publish(self, sends: Iterable[tuple[str, dict]]) -> None:
        """Queue each (group, event) for Redis, in order; returns at once."""
        for group, event in sends:
            self._shard(group).publish(PREFIX + group, _encode(event))

    async def received(self, event: dict) -> None:
        try:
            await self.on_event(event)
        except Exception:
            logger.exception("handling an event failed")

    async def reconnected(self, groups: list[str]) -> None:
        try:
            await self.on_reconnect(groups)
        except Exception:
            logger.exception("catching up after a Redis reconnect failed")

    async def ready(self) -> None:
        """Wait until every shard's reader is connected (tests, start-up)."""
        await asyncio.gather(*(shard.connected.wait() for shard in self.shards))

    async def close(self) -> None:
        tasks = [task for shard in self.shards for task in shard.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
