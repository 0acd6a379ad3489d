"""Process-local fan-out: one subscription per group per server process, not one per socket.

Services publish each event once to a group (`room.<id>`, `user.<id>`; see core.events). In every
server process a single Hub is the only channel-layer member of the groups its sockets need: it
receives each event once and hands it straight to the local consumers of that group, which send
the text the service serialised once. So an event costs one PUBLISH (channels-redis' pub/sub
layer) however many sockets are in the room, Redis holds no per-socket state, and no per-socket
channel-layer task or thread hop sits on the delivery path.

The layer stays at-most-once: consumers keep their own per-room order and fill holes from the
database (messaging.consumers), as before.
"""

import asyncio
import logging
import uuid
from typing import Any, Protocol

from channels.layers import get_channel_layer

from core.loops import per_loop

logger = logging.getLogger(__name__)


class Member(Protocol):
    async def hub_event(self, event: dict[str, Any]) -> None: ...


class Hub:
    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.origin = uuid.uuid4().hex  # marks the events this process already delivered itself
        self.channel: str | None = None
        self.groups: dict[str, set[Member]] = {}
        self.task: asyncio.Task | None = None
        self.lock = asyncio.Lock()  # group_add/discard of one group never interleave

    async def join(self, group: str, member: Member) -> None:
        async with self.lock:
            if self.channel is None:
                self.channel = await self.layer.new_channel()
            if self.task is None or self.task.done():
                self.task = asyncio.get_running_loop().create_task(self._receive())
            members = self.groups.get(group)
            if members is None:
                members = self.groups[group] = set()
                await self.layer.group_add(group, self.channel)
            members.add(member)

    async def leave(self, group: str, member: Member) -> None:
        async with self.lock:
            members = self.groups.get(group)
            if members is None:
                return
            members.discard(member)
            if not members:
                del self.groups[group]
                await self.layer.group_discard(group, self.channel)
            if not self.groups and self.task is not None:
                # Nothing to listen for in this process any more. A cancelled receive makes the
                # pub/sub layer drop the channel, so the next join starts with a new one.
                self.task.cancel()
                self.task = self.channel = None

    async def _receive(self) -> None:
        while True:
            try:
                event = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis away: the layer reconnects; clients catch up by sync
                logger.exception("hub receive failed")
                await asyncio.sleep(0.5)
                continue
            if event.get("origin") != self.origin:  # our own events were delivered at once
                await self.deliver(event)

    async def deliver(self, event: dict[str, Any]) -> None:
        """Hand an event to this process's members of its group."""
        members = self.groups.get(event.get("group"))
        if not members:
            return
        for member in list(members):
            try:
                await member.hub_event(event)
            except Exception:
                logger.exception("delivering %s failed", event.get("type"))


# This event loop's hub (one per server process; tests run a loop per test).
get_hub = per_loop(Hub)
