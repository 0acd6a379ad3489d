"""Process-local fan-out: one subscription per group per server process, not one per socket.

Services publish each event once to a group (`room.<id>`, `user.<id>`; see core.events). In every
server process a single Hub holds the sockets of each group its sockets need and the process's
`Bus` (core.pubsub): it receives each event once and hands it straight to the local consumers of
that group, which send the text the service serialised once. So an event costs one PUBLISH
however many sockets are in the room, Redis holds no per-socket state, and no per-socket task or
thread hop sits on the delivery path.

Pub/sub stays at-most-once: consumers keep their own per-room order and fill holes from the
database (messaging.consumers). When the bus reconnects after losing Redis, the hub runs the
recovery hooks registered with `on_reconnect` (messaging registers one that brings every socket
of the affected groups up to date from PostgreSQL at once, instead of waiting for the next event).
"""

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

from django.conf import settings

from core import metrics
from core.loops import per_loop
from core.pubsub import Bus, _raise_if_cancelled
from core.redis_clients import aclient

logger = logging.getLogger(__name__)


class Member(Protocol):
    async def hub_event(self, event: dict[str, Any]) -> None: ...


# Live connection counts: every CONNECTIONS_REPORT_SECONDS each server process writes
# {"connections": {transport: n}, "updated_at": unix time} into this Redis hash under "host:pid";
# the operators' admin reads it and ignores entries older than CONNECTIONS_STALE_SECONDS.
CONNECTIONS_KEY = "parley:connections"
# A socket or an event stream (SSE, long-poll) is in its user's group exactly once. "socket" as in
# core.metrics; SSE and long-poll streams are one class here, so one label: "sse_poll".
_TRANSPORTS = {"ChatConsumer": "socket", "Stream": "sse_poll"}

Recovery = Callable[["Hub", list[str]], Awaitable[None]]
_recoveries: list[Recovery] = []


def on_reconnect(recovery: Recovery) -> Recovery:
    """Register `recovery(hub, groups)`, run after the bus lost Redis and got it back, with the
    groups whose events may have been lost."""
    _recoveries.append(recovery)
    return recovery


class Hub:
    def __init__(self) -> None:
        self.origin = uuid.uuid4().hex  # marks the events this process already delivered itself
        self.groups: dict[str, set[Member]] = {}
        self.subscribing: dict[str, asyncio.Future] = {}  # groups whose first join is subscribing
        self.bus = Bus(settings.REDIS_CHANNEL_URLS, on_event=self._received, on_reconnect=self._recover)
        self.process = f"{socket.gethostname()}:{os.getpid()}"
        self.reporter = asyncio.create_task(self._report_connections_forever())

    async def join(self, group: str, member: Member) -> None:
        """Add `member` to `group`; returns once the process's subscription to it went to Redis
        (the first member's join sends it; later ones wait for that). Joins do not wait for each
        other: a storm's joins go to Redis together (core.pubsub batches them)."""
        members = self.groups.get(group)
        if members is not None:
            members.add(member)
            subscribing = self.subscribing.get(group)
            if subscribing is not None:
                await asyncio.shield(subscribing)
            return
        self.groups[group] = {member}
        metrics.HUB_GROUPS.inc()
        subscribed = self.subscribing[group] = asyncio.get_running_loop().create_future()
        try:
            await self.bus.subscribe(group)
        finally:
            if not subscribed.done():
                subscribed.set_result(None)
            if self.subscribing.get(group) is subscribed:
                del self.subscribing[group]

    async def leave(self, group: str, member: Member) -> None:
        """Remove `member`; the last one out unsubscribes (after the group's subscription, which
        core.pubsub sends in order)."""
        members = self.groups.get(group)
        if members is None:
            return
        members.discard(member)
        if not members:
            del self.groups[group]
            metrics.HUB_GROUPS.dec()
            await self.bus.unsubscribe(group)

    def publish(self, sends: list[tuple[str, dict]]) -> None:
        """Queue events for the other processes (core.pubsub); returns at once."""
        for _, event in sends:
            event["origin"] = self.origin
        self.bus.publish(sends)
        metrics.published(len(sends))

    async def _received(self, event: dict[str, Any]) -> None:
        if event.get("origin") != self.origin:  # our own events were delivered at once
            metrics.received()
            await self.deliver(event)

    async def deliver(self, event: dict[str, Any]) -> None:
        """Hand an event to this process's members of its group."""
        members = self.groups.get(cast(str, event.get("group")))
        if not members:
            return
        for member in list(members):
            try:
                await member.hub_event(event)
            except Exception:
                logger.exception("delivering %s failed", event.get("type"))
        metrics.delivered(event["type"], len(members))  # per event, not per socket
        metrics.delivery_latency(event)

    def connections(self) -> dict[str, int]:
        """This process's open client connections by transport."""
        counts: dict[str, int] = {}
        for group, members in self.groups.items():
            if group.startswith("user."):
                for member in members:
                    transport = _TRANSPORTS.get(type(member).__name__, "other")
                    counts[transport] = counts.get(transport, 0) + 1
        return counts

    async def report_connections(self) -> None:
        entry = json.dumps({"connections": self.connections(), "updated_at": time.time()})
        async with aclient().pipeline(transaction=False) as pipe:
            pipe.hset(CONNECTIONS_KEY, self.process, entry)
            pipe.expire(CONNECTIONS_KEY, int(max(60, settings.CONNECTIONS_STALE_SECONDS * 10)))
            await pipe.execute()

    async def _report_connections_forever(self) -> None:
        while True:
            try:
                await self.report_connections()
            except Exception as error:  # Redis away: the admin sees this entry go stale
                logger.debug("could not report connection counts: %r", error)
            _raise_if_cancelled()  # redis-py may turn a cancellation into an error caught above
            await asyncio.sleep(settings.CONNECTIONS_REPORT_SECONDS)

    async def _recover(self, groups: list[str]) -> None:
        for recovery in _recoveries:
            await recovery(self, [group for group in groups if group in self.groups])


# This event loop's hub (one per server process; tests run a loop per test).
get_hub = per_loop(Hub)
