"""One Server-Sent Events stream or one long-poll: the user's rooms, as the socket delivers them,
and the boards it asked for, as a socket that joined them.

A `Stream` is a hub member (core.hub) like a socket: it joins `user.<id>` and `room.<id>` of
every room the user is in, and `board.<id>` of each board it follows; it delivers numbered changes
(`room.sequenced`, `board.sequenced`) strictly in number order, filling holes from PostgreSQL,
through the socket's sequencer (core.sequencer), relays the unnumbered events (typing, receipts,
presence, board awareness, comments, simulation progress), follows membership changes
(`user.membership`) at once (leaving a room leaves its boards) and ends on `user.revoked`. The
frames are the very texts the socket sends.

What it writes goes to an outbox of (text, id) pairs; `id` is the resume position after that frame
(transports.cursors) for the frames that move it (`session.ready`, numbered changes, `room.added`,
`room.removed`, `board.state`, `board.update`), None for the others. The SSE view and the
long-poll view drain it.
"""

import asyncio
import json
import logging
from collections.abc import Awaitable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from accounts.models import User
from boards import selectors as board_selectors
from boards.consumers import _local_boards
from boards.crdt import b64encode
from boards.payloads import update_frame
from boards.services import board_group
from core import metrics
from core.errors import ApplicationError, is_outage
from core.events import dumps, room_group, user_group
from core.hub import Hub, get_hub, on_reconnect
from core.sequencer import Cursor, Sequencer
from core.threads import database_sync_to_async
from messaging import selectors
from messaging.consumers import fetch_changes, gap_wait, news
from rooms.selectors import rooms_last_sequence, user_rooms_states
from transports import cursors

logger = logging.getLogger(__name__)

REVOKED = dumps({"type": "session.revoked"})
# Frames a stream may hold for a client that does not read them (the socket's WS_MAX_BACKLOG_BYTES):
# beyond, it drops them all and ends; the client resumes from its last id, from PostgreSQL.
MAX_PENDING = 5000
# Boards one stream may follow (`?boards=`).
MAX_BOARDS = 16


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
    def __init__(self, user: User, boards: list[str] | tuple[str, ...] = ()) -> None:
        self.user = user
        self.hub: Hub | None = None  # joined only when live
        self.rooms = Sequencer(deliver=self._room_delivered, fetch=self._fetch_changes, wait=gap_wait)
        self.cursors = self.rooms.cursors  # room id -> what was written of it
        self.wanted = tuple(boards)  # the boards asked for (canonical ids), in order
        self.boards = Sequencer(deliver=self._board_delivered, fetch=self._fetch_board, wait=gap_wait, name="board")
        self.board_rooms: dict[str, str] = {}  # board followed -> its room
        self.presence_sent: dict[int, str] = {}
        self.profiles_sent: dict[int, str] | None = None  # user.profile frames sent, by user
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
        # On the database threads, which hand their connection back after each use: a live
        # stream outlasts its request, and no request thread keeps a connection while it waits
        # for those threads (transports.api._authenticate).
        state, resolved, unread = await database_sync_to_async(_open_state)(self.user.pk, position)
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
            # Ahead of what the hub handed over while the stream joined its groups (a room member's
            # presence, say): nothing is written yet, and the client learns its rooms first, as on
            # a socket (whose frames wait for its connect handler).
            self._write(dumps(ready), moved=True, first=True)
            await self._read_what_came_while_joining()
            for board_id in self.wanted:
                await self._follow_board(board_id, None)
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
            if cursor is not None and cursor.last is not None and cursor.last < last:
                await self._read_up_to(room_id, last)
        await self._read_what_came_while_joining()
        known_boards = resolved.boards()
        for board_id in known_boards:
            if board_id not in self.wanted:  # no longer asked for
                resolved.forget(cursors.board_key(board_id))
        for board_id in self.wanted:
            await self._follow_board(board_id, known_boards.get(board_id))
        return True

    async def close(self) -> None:
        for room_id in list(self.cursors):
            await self._unfollow(room_id)
        for board_id in list(self.boards.cursors):
            await self._unfollow_board(board_id)
        if self.live and self.hub is not None:
            await self.hub.leave(user_group(self.user.pk), self)
            self.live = False
        if self.position is not None:
            try:
                await sync_to_async(cursors.touch, thread_sensitive=False)(self.position.stream)
            except Exception:  # the base simply expires sooner
                logger.debug("could not extend a stream's bases", exc_info=True)

    async def rebase(self) -> None:
        """Write a new base when the position has grown, so ids stay short (transports.cursors)."""
        position = self.position
        if position is None or not position.wants_rebase():
            return
        snapshot = self._numbers()
        generation = position.generation + 1
        try:
            # Redis only: any thread (not the request's: a stream handed that back, core.threads.hand_back).
            await sync_to_async(cursors.store_base, thread_sensitive=False)(position.stream, generation, snapshot)
        except Exception as error:  # Redis away: ids stay longer until a later rebase works
            if not is_outage(error):
                raise
            logger.warning("could not write a stream's base: %s", error)
            return
        # Frames written meanwhile carry ids on the old base, which stays readable.
        position.generation = generation
        position.set_base(snapshot)
        position.moved = {}
        for key, number in self._numbers().items():
            position.move(key, number)

    def _numbers(self) -> dict[str, int]:
        """What the stream wrote of each room and board it follows (position keys)."""
        numbers = {room_id: cursor.last for room_id, cursor in self.cursors.items() if cursor.last is not None}
        for board_id, cursor in self.boards.cursors.items():
            if cursor.last is not None:
                numbers[cursors.board_key(board_id)] = cursor.last
        return numbers

    # -- output ------------------------------------------------------------------------------

    def _write(self, text: str, *, moved: bool = False, first: bool = False) -> None:
        if self.ended or self.overflowed:
            return
        if len(self.out) >= MAX_PENDING:
            self.overflowed = True
            self.out.clear()
            self.wake.set()
            return
        frame = (text, self.position.encode() if moved and self.position is not None else None)
        if first:
            self.out.insert(0, frame)
        else:
            self.out.append(frame)
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
        if cursor is None:
            return
        number = event["seq"]
        if self.rooms.advance(cursor, number):
            self._room_delivered(event["room"], number, event["text"])
            return
        await self.rooms.offer(event["room"], cursor, number, event["text"])

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
        if news(self.presence_sent, event):
            self._write(event["text"])

    async def user_profile(self, event: dict) -> None:
        """Someone's name or picture changed (accounts.services): sent to each of their rooms, so
        someone sharing several rooms gets it once; their own sockets have it from `user.relay`."""
        if event["user"] == self.user.pk:
            return
        self.profiles_sent = self.profiles_sent or {}  # made by the first one: few sockets get one
        if news(self.profiles_sent, event):
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

    async def board_sequenced(self, event: dict) -> None:
        """A board's numbered update (the socket's own are for the socket; REST writes come too)."""
        cursor = self.boards.cursors.get(event["board"])
        if cursor is None:
            return
        number = event["seq"]
        if self.boards.advance(cursor, number):
            self._board_delivered(event["board"], number, event["text"])
            return
        await self.boards.offer(event["board"], cursor, number, event["text"])

    async def board_relay(self, event: dict) -> None:
        """Comments, simulation runs and their progress, awareness: unnumbered, at most once."""
        if event["board"] in self.boards.cursors:
            self._write(event["text"])

    async def board_gone(self, event: dict) -> None:
        """Deleted: the room's board.deleted says so; nothing more of it comes."""
        if event["board"] in self.boards.cursors:
            await self._unfollow_board(event["board"])

    handlers = {
        "room.sequenced": room_sequenced,
        "room.relay": room_relay,
        "user.relay": user_relay,
        "user.presence": user_presence,
        "user.profile": user_profile,
        "user.membership": user_membership,
        "user.revoked": user_revoked,
        "board.sequenced": board_sequenced,
        "board.relay": board_relay,
        "board.awareness": board_relay,
        "board.gone": board_gone,
    }

    # -- ordering (core.sequencer, as messaging.consumers.ChatConsumer) ----------------------

    async def _follow(self, room_id: str, last: int) -> None:
        self.rooms.follow(room_id, last)
        if self.live and self.hub is not None:
            await self.hub.join(room_group(room_id), self)

    async def _unfollow(self, room_id: str) -> None:
        for board_id in [board_id for board_id, room in self.board_rooms.items() if room == room_id]:
            await self._unfollow_board(board_id)  # as a socket leaves the room's boards
        self.rooms.forget(room_id)
        if self.position is not None:
            self.position.forget(room_id)
        if self.live and self.hub is not None:
            await self.hub.leave(room_group(room_id), self)

    def _room_delivered(self, room_id: str, number: int, text: str | None) -> None:
        if self.position is not None:
            self.position.move(room_id, number)
        if text is not None:
            self._write(text, moved=True)

    def _deliver(self, room_id: str, cursor: Cursor, number: int, text: str) -> None:
        cursor.last = number
        self._room_delivered(room_id, number, text)

    def _fetch_changes(self, room_id: str, after: int, upto: int) -> Awaitable[tuple[list[tuple[int, str]], int]]:
        metrics.GAPS["stream"].inc()
        return fetch_changes(self.user, room_id, after, upto)

    async def _read_what_came_while_joining(self) -> None:
        """A live stream joins its rooms' groups after reading their numbers: a change committed in
        between was published to no connection of this process, and would show only with the
        room's next change. Read the numbers again now that the stream hears its rooms, and
        fetch what came meanwhile (as a socket does: messaging.consumers)."""
        if self.live:
            await self.rooms.read_behind(await selectors.arooms_last_sequence(user_id=self.user.pk))

    async def _read_up_to(self, room_id: str, upto: int) -> None:
        """Deliver every change of the room after the cursor up to `upto`, read from PostgreSQL
        (the socket's sync path), in order, with whatever live events arrived meanwhile."""
        await self.rooms.read_up_to(room_id, upto)

    # -- boards --------------------------------------------------------------------------------

    async def _follow_board(self, board_id: str, last: int | None) -> None:
        """Follow a board from `last` (what the client has, from its position: the updates after it
        are read from the log), or from a whole `board.state` (None, or the log was compacted). A
        board the user may not see gets the socket's answer to its board.join: an `error` frame
        (`not_found`), with `board`; it is not followed."""
        cursor = self.boards.follow(board_id, None)  # live updates wait until the start is written
        if self.live and self.hub is not None:
            await self.hub.join(board_group(board_id), self)
        try:
            if last is None:
                await self._board_state(board_id)
                return
            found = await database_sync_to_async(board_selectors.board_access)(user=self.user, board_id=board_id)
            self.board_rooms[board_id] = str(found.board.room_id)
            Sequencer.restart(cursor, last)
            await self.boards.read_up_to(board_id, found.board.last_sequence)
        except ApplicationError as error:
            if self.boards.cursors.get(board_id) is cursor:
                await self._unfollow_board(board_id)
                self._write(dumps({"type": "error", **error.as_dict(), "ref": None, "board": board_id}), moved=True)

    async def _board_state(self, board_id: str) -> None:
        """`board.state` (the whole document, as the socket's board.join without a state vector)."""
        board, sequence, update = await database_sync_to_async(board_selectors.board_join)(
            user=self.user, board_id=board_id, state_vector=None
        )
        cursor = self.boards.cursors.get(board_id)
        if cursor is None:
            return
        self.board_rooms[board_id] = str(board.room_id)
        local = _local_boards().get(board_id)  # the process's sockets on the board know its cursors
        frame = {
            "type": "board.state",
            "board": board_id,
            "room": str(board.room_id),
            "sequence": sequence,
            "update": b64encode(update),
            "awareness": local.awareness_list(exclude="") if local is not None else [],
        }
        Sequencer.restart(cursor, sequence)
        if self.position is not None:
            self.position.move(cursors.board_key(board_id), cursor.last or 0)
        self._write(dumps(frame), moved=True)
        await self.boards.drain(board_id, cursor)

    async def _unfollow_board(self, board_id: str) -> None:
        self.boards.forget(board_id)
        self.board_rooms.pop(board_id, None)
        if self.position is not None:
            self.position.forget(cursors.board_key(board_id))
        if self.live and self.hub is not None:
            await self.hub.leave(board_group(board_id), self)

    def _board_delivered(self, board_id: str, number: int, text: str | None) -> None:
        if self.position is not None:
            self.position.move(cursors.board_key(board_id), number)
        if text is not None:
            self._write(text, moved=True)

    async def _fetch_board(self, board_id: str, after: int, upto: int) -> tuple[list[tuple[int, str]], int] | None:
        try:
            updates = await database_sync_to_async(board_selectors.board_updates)(
                board_id=board_id, after_sequence=after, until_sequence=upto, limit=500
            )
        except board_selectors.Compacted:  # the log went into a snapshot: the whole state instead
            await self._board_state(board_id)
            return None
        return [(u.sequence, dumps(update_frame(u))) for u in updates], (updates[-1].sequence if updates else after)


@on_reconnect
async def _catch_up_streams(hub: Hub, groups: list[str]) -> None:
    """Redis is back: bring this process's streams up to date (as messaging.consumers does for
    sockets); a user's memberships are re-read by a stream's next resume."""
    rooms = [group.split(".", 1)[1] for group in groups if group.startswith("room.")]
    if rooms:
        lasts = await database_sync_to_async(rooms_last_sequence)(room_ids=rooms)
        for room_id, last in lasts.items():
            for stream in [m for m in hub.groups.get(room_group(room_id), ()) if isinstance(m, Stream)]:
                try:
                    await stream._read_up_to(room_id, last)
                except ApplicationError:
                    continue
    for group in groups:
        if not group.startswith("board."):
            continue
        board_id = group.split(".", 1)[1]
        streams = [m for m in hub.groups.get(group, ()) if isinstance(m, Stream)]
        if not streams:
            continue
        last = await database_sync_to_async(board_selectors.board_last_sequence)(board_id=board_id)
        for stream in streams:
            try:
                await stream.boards.read_up_to(board_id, last)
            except ApplicationError:
                continue


def ping_seconds() -> float:
    return float(settings.TRANSPORT_PING_SECONDS)
