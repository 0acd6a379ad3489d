"""One Server-Sent Events stream or one long-poll: the user's rooms, as the socket delivers them.

A `Stream` is a hub member (core.hub) like a socket: it joins `user.<id>` and `room.<id>` of
every room the user is in, keeps a cursor per room, delivers numbered changes (`room.sequenced`)
strictly in number order and fills holes from PostgreSQL (messaging.selectors), relays the
unnumbered events, follows membership changes (`user.membership`) at once and ends on
`user.revoked`. The frames are the very texts the socket sends.

What it writes goes to an outbox of (text, id) pairs; `id` is the resume position after that frame
(transports.cursors) for the frames that move it (`session.ready`, numbered changes, `room.added`,
`room.removed`), None for the others. The SSE view and the long-poll view drain it.
"""

import asyncio
import contextvars
import json
import logging
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings

from accounts.models import User
from core.errors import ApplicationError, is_outage
from core.events import dumps, room_group, user_group
from core.hub import Hub, get_hub, on_reconnect
from messaging import selectors
from messaging.consumers import GAP_MAX_ATTEMPTS, GAP_WAIT_SECONDS, RoomCursor
from messaging.models import Message
from messaging.payloads import change_frame
from rooms.selectors import rooms_last_sequence, user_rooms_states
from transports import cursors

logger = logging.getLogger(__name__)

REVOKED = dumps({"type": "session.revoked"})
# Frames a stream may hold for a client that does not read them (the socket's WS_MAX_BACKLOG_BYTES):
# beyond, it drops them all and ends; the client resumes from its last id, from PostgreSQL.
MAX_PENDING = 5000


def _open_state(user_id: int, position: str | None) -> tuple[dict | None, cursors.Position | None, dict | None]:
    """(the user's state: active and rooms, the resolved position or None, unread counts when
    starting afresh). Raises cursors.BadPosition."""
    try:
        resolved = cursors.resolve(position) if position else None
    except cursors.BadPosition:  # well formed but naming no room of its base: start afresh
        resolved = None
    state = user_rooms_states(user_ids=[user_id]).get(user_id)
    unread = selectors.unread_counts(user_id=user_id) if resolved is None else None
    return state, resolved, unread


class Stream:
    def __init__(self, user: User) -> None:
        self.user = user
        self.hub: Hub | None = None  # joined only when live
        self.cursors: dict[str, RoomCursor] = {}
        self.presence_sent: dict[int, str] = {}
        self.out: list[tuple[str, str | None]] = []
        self.wake = asyncio.Event()
        self.ended = False  # revoked: nothing more is written
        self.overflowed = False  # its client fell MAX_PENDING frames behind: it must resume
        self.live = False
        self.position: cursors.Position | None = None

    # -- opening and closing -----------------------------------------------------------------

    async def open(self, position: str | None, *, live: bool) -> bool:
        """Follow the user's rooms from `position` (None: from now, with session.ready), writing
        what the position missed. Returns False if `position` could not be resumed (started
        afresh instead). `live`: join the hub first (a fresh long-poll answers at once: no need)."""
        self.live = live
        if live:
            self.hub = get_hub()
            # Subscribe before reading the state: an event published in between is then received
            # and, if the state covers it already, dropped as a duplicate.
            await self.hub.join(user_group(self.user.pk), self)
        # A live stream outlasts its request: database_sync_to_async hands its connection back
        # after each use. A fresh long-poll is an ordinary short request on the request's thread.
        run = database_sync_to_async if live else sync_to_async
        state, resolved, unread = await run(_open_state)(self.user.pk, position)
        if state is None or not state["active"]:
            self._end()
            return resolved is not None
        rooms: dict[str, tuple[dict, str]] = state["rooms"]
        current = {room_id: room["last_sequence"] for room_id, (room, _) in rooms.items()}
        if resolved is None:
            stream = cursors.new_stream_id()
            await sync_to_async(cursors.store_base)(stream, 0, current)
            self.position = cursors.Position(stream, 0, current)
            for room_id, last in current.items():
                await self._follow(room_id, last)
            ready = {"type": "session.ready", "user": self.user.pk, "rooms": current, "unread": unread}
            self._write(dumps(ready), moved=True)
            return position is None
        self.position = resolved
        known = resolved.rooms()  # without the rooms the client was told it left
        for room_id in sorted(set(known) - set(rooms)):  # left while away
            resolved.forget(room_id)
            self._write(dumps({"type": "room.removed", "room": room_id}), moved=True)
        for room_id, (room, role) in rooms.items():
            if room_id in known:
                await self._follow(room_id, known[room_id])
            else:  # joined while away: followed from now, as a socket does on room.added
                await self._follow(room_id, room["last_sequence"])
                resolved.move(room_id, room["last_sequence"])
                self._write(dumps({"type": "room.added", "room": room | {"role": role}}), moved=True)
        for room_id, last in current.items():
            cursor = self.cursors.get(room_id)
            if cursor is not None and cursor.last < last:
                await self._read_up_to(room_id, last)
        return True

    async def close(self) -> None:
        for room_id in list(self.cursors):
            await self._unfollow(room_id)
        if self.live and self.hub is not None:
            await self.hub.leave(user_group(self.user.pk), self)
            self.live = False
        if self.position is not None:
            try:
                await sync_to_async(cursors.touch)(self.position.stream)
            except Exception:  # the base simply expires sooner
                logger.debug("could not extend a stream's bases", exc_info=True)

    async def rebase(self) -> None:
        """Write a new base when the position has grown, so ids stay short (transports.cursors)."""
        position = self.position
        if position is None or not position.wants_rebase():
            return
        snapshot = {room_id: cursor.last for room_id, cursor in self.cursors.items()}
        generation = position.generation + 1
        try:
            await sync_to_async(cursors.store_base)(position.stream, generation, snapshot)
        except Exception as error:  # Redis away: ids stay longer until a later rebase works
            if not is_outage(error):
                raise
            logger.warning("could not write a stream's base: %s", error)
            return
        # Frames written meanwhile carry ids on the old base, which stays readable.
        position.generation = generation
        position.set_base(snapshot)
        position.moved = {}
        for room_id, cursor in self.cursors.items():
            position.move(room_id, cursor.last)

    # -- output ------------------------------------------------------------------------------

    def _write(self, text: str, *, moved: bool = False) -> None:
        if self.ended or self.overflowed:
            return
        if len(self.out) >= MAX_PENDING:
            self.overflowed = True
            self.out.clear()
            self.wake.set()
            return
        self.out.append((text, self.position.encode() if moved and self.position is not None else None))
        self.wake.set()

    def _end(self) -> None:
        if not self.ended:
            self._write(REVOKED)
            self.ended = True
            self.wake.set()

    def take(self) -> list[tuple[str, str | None]]:
        out, self.out = self.out, []
        self.wake.clear()
        return out

    # -- hub -> stream (the socket's handlers, messaging.consumers) ------------------------

    async def hub_event(self, event: dict[str, Any]) -> None:
        handler = self.handlers.get(event["type"])
        if handler is not None:
            await handler(self, event)

    async def room_sequenced(self, event: dict) -> None:
        cursor = self.cursors.get(event["room"])
        number = event["seq"]
        if cursor is None or number <= cursor.last:
            return
        cursor.pending[number] = event["text"]
        await self._drain(event["room"], cursor)

    async def room_relay(self, event: dict) -> None:
        room_id = event["room"]
        if room_id not in self.cursors or event.get("exclude_user") == self.user.pk:
            return
        if event.get("gone_user") == self.user.pk:  # removed; the user-group event may be lost
            await self._unfollow(room_id)
            self._write(dumps({"type": "room.removed", "room": room_id}), moved=True)
            return
        self._write(event["text"])

    async def user_relay(self, event: dict) -> None:
        self._write(event["text"])

    async def user_presence(self, event: dict) -> None:
        if self.presence_sent.get(event["user"]) != event["text"]:
            self.presence_sent[event["user"]] = event["text"]
            self._write(event["text"])

    async def user_membership(self, event: dict) -> None:
        room_id = event["room"]
        if event["role"] is None:
            if room_id not in self.cursors:
                return  # the room.relay with gone_user came first
            await self._unfollow(room_id)
        elif room_id not in self.cursors:
            last = json.loads(event["text"])["room"]["last_sequence"]
            await self._follow(room_id, last)
            if self.position is not None:
                self.position.move(room_id, last)
        self._write(event["text"], moved=True)

    async def user_revoked(self, event: dict) -> None:
        self._end()

    handlers = {
        "room.sequenced": room_sequenced,
        "room.relay": room_relay,
        "user.relay": user_relay,
        "user.presence": user_presence,
        "user.membership": user_membership,
        "user.revoked": user_revoked,
    }

    # -- ordering (as messaging.consumers.ChatConsumer) -------------------------------------

    async def _follow(self, room_id: str, last: int) -> None:
        self.cursors[room_id] = RoomCursor(last=last)
        if self.live and self.hub is not None:
            await self.hub.join(room_group(room_id), self)

    async def _unfollow(self, room_id: str) -> None:
        cursor = self.cursors.pop(room_id, None)
        if cursor and cursor.gap_task:
            cursor.gap_task.cancel()
        if self.position is not None:
            self.position.forget(room_id)
        if self.live and self.hub is not None:
            await self.hub.leave(room_group(room_id), self)

    def _deliver(self, room_id: str, cursor: RoomCursor, number: int, text: str) -> None:
        cursor.last = number
        if self.position is not None:
            self.position.move(room_id, number)
        self._write(text, moved=True)

    async def _drain(self, room_id: str, cursor: RoomCursor) -> None:
        while cursor.last + 1 in cursor.pending:
            cursor.gap_attempts = 0
            self._deliver(room_id, cursor, cursor.last + 1, cursor.pending.pop(cursor.last + 1))
        if cursor.pending and cursor.gap_task is None and cursor.gap_attempts < GAP_MAX_ATTEMPTS:
            cursor.gap_task = asyncio.create_task(self._fill_gap(room_id, cursor), context=contextvars.Context())

    async def _fill_gap(self, room_id: str, cursor: RoomCursor) -> None:
        awaited = cursor.last + 1
        await asyncio.sleep(GAP_WAIT_SECONDS * (2**cursor.gap_attempts))
        cursor.gap_task = None
        if not cursor.pending or self.cursors.get(room_id) is not cursor:
            return
        if cursor.last >= awaited:
            await self._drain(room_id, cursor)
            return
        cursor.gap_attempts += 1
        try:
            await self._read_up_to(room_id, min(cursor.pending) - 1)
        except ApplicationError:
            return

    async def _read_up_to(self, room_id: str, upto: int) -> None:
        """Deliver every change of the room after the cursor up to `upto`, read from PostgreSQL
        (the socket's sync path), in order, with whatever live events arrived meanwhile."""
        while True:
            cursor = self.cursors.get(room_id)
            if cursor is None or cursor.last >= upto:
                return
            messages, _, reached = await database_sync_to_async(selectors.changes_page)(
                user=self.user, room_id=room_id, after_sequence=cursor.last, until_sequence=upto, limit=100
            )
            if reached <= cursor.last:
                return
            self.catch_up(room_id, messages, reached)
            await self._drain(room_id, cursor)

    def catch_up(self, room_id: str, messages: list[Message], reached: int) -> None:
        cursor = self.cursors.get(room_id)
        if cursor is None:
            return
        for message in messages:
            if message.changed_sequence > cursor.last:
                cursor.pending.setdefault(message.changed_sequence, dumps(change_frame(message)))
        for number in sorted(n for n in cursor.pending if n <= reached):
            text = cursor.pending.pop(number)
            if number > cursor.last:
                self._deliver(room_id, cursor, number, text)
        if reached > cursor.last:
            cursor.last = reached
            if self.position is not None:
                self.position.move(room_id, reached)


@on_reconnect
async def _catch_up_streams(hub: Hub, groups: list[str]) -> None:
    """Redis is back: bring this process's streams up to date (as messaging.consumers does for
    sockets); a user's memberships are re-read by a stream's next resume."""
    rooms = [group.split(".", 1)[1] for group in groups if group.startswith("room.")]
    if not rooms:
        return
    lasts = await database_sync_to_async(rooms_last_sequence)(room_ids=rooms)
    for room_id, last in lasts.items():
        for stream in [m for m in hub.groups.get(room_group(room_id), ()) if isinstance(m, Stream)]:
            try:
                await stream._read_up_to(room_id, last)
            except ApplicationError:
                continue


def ping_seconds() -> float:
    return float(settings.TRANSPORT_PING_SECONDS)
