"""Boards on the one socket (docs/protocol.md "Boards"): board.join, board.update, board.sync,
board.awareness and board.leave, composed into messaging.consumers.ChatConsumer as `BoardSessions`
(one per socket) and its frame handlers (`FRAME_HANDLERS`).

In each process, a `LocalBoard` per board that any of its sockets joined is the hub member of the
board's group (core.hub): it receives each event once, keeps the board's awareness states (so a
joining socket gets everyone's cursors at once), and hands the event to the sockets on the board.
Each socket's boards go through one sequencer (core.sequencer, as its rooms do): a board's
numbered updates in strictly increasing order, early ones held back, missing ones read from the
database; its own updates it skips (the socket got their numbers in the ack).
"""

import asyncio
import contextvars
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from boards import documents, selectors, services
from boards.crdt import b64encode
from boards.payloads import sync_item, update_ack, update_frame
from boards.selectors import Compacted
from boards.services import board_group
from core import wire
from core.batches import Batches
from core.errors import ApplicationError, Internal, InvalidInput, NotFound, Unavailable, is_outage
from core.events import call_service, dumps, publishing, send_event
from core.hub import Hub, get_hub, on_reconnect
from core.loops import PerLoop, per_loop
from core.sequencer import Cursor, Sequencer
from core.threads import database_sync_to_async
from messaging.params import ChangesParams, validated
from rooms.payloads import user_payload

logger = logging.getLogger(__name__)

AWARENESS_TTL_SECONDS = 30  # a state not refreshed for this long is not handed to joiners
AWARENESS_MAX_BYTES = services.AWARENESS_MAX_BYTES
# Awareness goes out to a process's sockets at most once per tick: the latest state of every
# socket that changed since the last frame, in one frame (docs/protocol.md "Boards"). A change
# after a quiet tick goes out at once; under load one frame per socket per tick carries them all.
# 25 ms: a change waits half a tick on average, so with 50 editors moving cursors at 20 Hz the
# cursors' p50 was 22 ms at 50 ms ticks and 14 ms at 25 (p99 51 -> 27 ms), at the same server CPU
# (docs/performance.md, "Boards: the awareness tick on a quiet machine").
AWARENESS_TICK_SECONDS = 0.025

Socket = Any  # messaging.consumers.ChatConsumer (not imported: it imports us)

# Frames a socket handles at once even while its earlier board.update frames wait for their batch
# to commit (every other frame first waits for their answers: BoardSessions.settle).
UNORDERED = frozenset({"board.update", "board.awareness"})


async def _apply_updates(requests: list[dict]) -> list[Any]:
    """A batch of the board.update frames of every socket in this process (core.batches, as
    messaging.consumers.write_batches does sends and reactions): while one batch is in the
    database, the updates that arrive meanwhile wait and go together in the next one, each board's
    in one transaction (boards.services.board_update_apply_many). Each update gets its own result,
    (update, created) or an ApplicationError, which its socket sends only after the batch
    committed; a batch that fails whole (a bug, an outage) answers every update of it."""
    try:
        return await call_service(services.board_update_apply_many, requests=requests)
    except Exception as error:
        if not is_outage(error):
            logger.exception("a batch of board updates failed")
        return [Unavailable() if is_outage(error) else Internal()] * len(requests)


MAX_UPDATE_BATCH = 200
update_batches: PerLoop[Batches[dict, Any]] = per_loop(lambda: Batches(_apply_updates, limit=MAX_UPDATE_BATCH))


class LocalBoard:
    """This process's hub member for one board."""

    def __init__(self, board_id: str) -> None:
        self.board_id = board_id
        self.sessions: set[BoardSession] = set()
        # session id -> (user, state, monotonic time): the latest awareness of every socket on the
        # board, from every process (they all publish to the board's group).
        self.awareness: dict[str, tuple[dict, Any, float]] = {}
        # session id -> (its entry's JSON, its single board.awareness frame): changed since the
        # last awareness frame went out (`_flush_awareness`), oldest change first.
        self.changed: dict[str, tuple[str, str]] = {}
        self.flusher: asyncio.Task | None = None
        self.flushed_at = -AWARENESS_TICK_SECONDS

    async def hub_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "board.sequenced":
            for session in list(self.sessions):
                await session.sequenced(event)
        elif kind == "board.awareness":
            session_id = event["session"]
            if event["state"] is None:
                self.awareness.pop(session_id, None)
            else:
                self.awareness[session_id] = (event["user"], event["state"], time.monotonic())
            self.changed.pop(session_id, None)  # re-inserted last: entries keep the order of changes
            self.changed[session_id] = (event.get("entry") or _awareness_entry(event), event["text"])
            if self.flusher is None:
                self.flusher = asyncio.get_running_loop().create_task(
                    self._flush_awareness(), context=contextvars.Context()
                )
        elif kind == "board.relay":
            for session in list(self.sessions):
                if session.socket.socket_id != event.get("session"):
                    await _send_event_text(session.socket, event)
        elif kind == "board.gone":
            for session in list(self.sessions):
                await session.owner.drop(session, announce=False)

    async def _flush_awareness(self) -> None:
        """Hand the changed awareness states to this process's sockets on the board: at most one
        frame per socket per AWARENESS_TICK_SECONDS (the first change after a quiet tick at
        once), holding the latest state of each socket that changed, never a socket's own."""
        loop = asyncio.get_running_loop()
        try:
            while self.changed:
                wait = self.flushed_at + AWARENESS_TICK_SECONDS - loop.time()
                if wait > 0:
                    await _tick_wait(wait)  # the tick: changes meanwhile join this frame
                changed, self.changed = self.changed, {}
                self.flushed_at = loop.time()
                everyone: dict[str, Any] | None = None  # one frame for the sockets not in it
                for session in list(self.sessions):
                    socket = session.socket
                    own = socket.socket_id
                    try:
                        if own not in changed:
                            everyone = everyone or {"text": _awareness_text(self.board_id, changed.values())}
                            await _send_event_text(socket, everyone)
                        elif len(changed) > 1:
                            others = [item for key, item in changed.items() if key != own]
                            await _send_event_text(socket, {"text": _awareness_text(self.board_id, others)})
                    except Exception:  # one socket closing must not keep the others' cursors
                        logger.debug("could not send awareness", exc_info=True)
        finally:
            self.flusher = None

    def awareness_list(self, *, exclude: str) -> list[dict[str, Any]]:
        horizon = time.monotonic() - AWARENESS_TTL_SECONDS
        return [
            {"user": user, "session": session, "state": state}
            for session, (user, state, stamp) in self.awareness.items()
            if session != exclude and stamp >= horizon
        ]


async def _tick_wait(seconds: float) -> None:
    """The rest of an awareness tick (a test holds it to put changes in one tick)."""
    await asyncio.sleep(seconds)


def _awareness_entry(event: dict[str, Any]) -> str:
    return dumps({"user": event["user"], "session": event["session"], "state": event["state"]})


def _awareness_text(board_id: str, items: Any) -> str:
    """One socket's awareness frame: the single `board.awareness` of the one socket that changed,
    or a `board.awareness.batch` of the latest states of several (oldest change first)."""
    items = list(items)
    if len(items) == 1:
        return items[0][1]
    states = ",".join(entry for entry, _ in items)
    return f'{{"type":"board.awareness.batch","board":"{board_id}","states":[{states}]}}'


_local_boards: PerLoop[dict[str, LocalBoard]] = per_loop(dict)


async def _attach(session: "BoardSession") -> LocalBoard:
    boards = _local_boards()
    local = boards.get(session.board_id)
    if local is None:
        local = boards[session.board_id] = LocalBoard(session.board_id)
    local.sessions.add(session)
    await get_hub().join(board_group(session.board_id), local)
    return local


async def _detach(session: "BoardSession") -> None:
    boards = _local_boards()
    local = session.local
    local.sessions.discard(session)
    if not local.sessions:
        if boards.get(session.board_id) is local:
            del boards[session.board_id]
        await get_hub().leave(board_group(session.board_id), local)


async def _send_event_text(socket: Socket, event: dict[str, Any]) -> None:
    """The event's text to one socket: its frame built once for every socket of the process."""
    if socket.wire_server is not None:
        socket._write(wire.event_frame(event))
    else:
        await socket.send(text_data=event["text"])


@dataclass(eq=False)
class BoardSession:
    """One socket on one board: what it has been delivered (`cursor`: every update numbered up to
    its `last`, None while (re)joining: live updates wait; a None item is the socket's own update)."""

    owner: "BoardSessions"
    board_id: str
    local: LocalBoard = field(init=False)
    cursor: Cursor = field(init=False)
    room_id: str | None = None
    doc_open: bool = False

    @property
    def socket(self) -> Socket:
        return self.owner.socket

    async def sequenced(self, event: dict[str, Any]) -> None:
        cursor = self.cursor
        number = event["seq"]
        mine = event.get("session") == self.socket.socket_id
        if Sequencer.advance(cursor, number):
            if not mine:
                await _send_event_text(self.socket, event)
            return
        await self.owner.sequencer.offer(self.board_id, cursor, number, None if mine else event["text"])

    async def drain(self) -> None:
        await self.owner.sequencer.drain(self.board_id, self.cursor)

    async def catch_up(self, upto: int) -> None:
        """Deliver every stored update up to `upto` this socket has not had, in order."""
        await self.owner.sequencer.read_up_to(self.board_id, upto)


class BoardSessions:
    """The boards one socket has joined."""

    def __init__(self, socket: Socket) -> None:
        self.socket = socket
        self.boards: dict[str, BoardSession] = {}
        self.sequencer = Sequencer(deliver=self._deliver, fetch=self._fetch, lock=socket.send_lock, name="board")

    async def join(self, frame: dict) -> None:
        board_id = _board_id(frame)
        session = self.boards.get(board_id)
        if session is None:
            session = self.boards[board_id] = BoardSession(self, board_id)
            session.cursor = self.sequencer.follow(board_id, None)
            session.local = await _attach(session)
        Sequencer.suspend(session.cursor)  # live updates wait until the state is sent
        try:
            await self.send_state(session, state_vector=frame.get("state_vector"))
        except BaseException:  # refused (no longer a member?) or failed: off the board
            await self.drop(session, announce=False)
            raise

    async def send_state(self, session: BoardSession, *, state_vector: object) -> None:
        """board.state for what the client lacks; the session then delivers from its sequence."""
        if not session.doc_open:
            documents.open(session.board_id)  # kept while the socket is on the board
            session.doc_open = True
        board, sequence, update = await database_sync_to_async(selectors.board_join)(
            user=self.socket.user, board_id=session.board_id, state_vector=state_vector
        )
        session.room_id = str(board.room_id)
        frame = {
            "type": "board.state",
            "board": session.board_id,
            "room": session.room_id,
            "sequence": sequence,
            "update": b64encode(update),
            "awareness": session.local.awareness_list(exclude=self.socket.socket_id),
        }
        async with self.socket.send_lock:
            Sequencer.restart(session.cursor, sequence)
            await self.socket.send(text_data=dumps(frame))
        await session.drain()

    def _deliver(self, board_id: str, number: int, text: str | None) -> Awaitable[None] | None:
        return None if text is None else self.socket.send(text_data=text)

    async def _fetch(self, board_id: str, after: int, upto: int) -> tuple[list[tuple[int, str]], int] | None:
        """The sequencer's fetch: the stored updates in (after, upto]; the whole state instead when
        the log went into a snapshot."""
        try:
            updates = await database_sync_to_async(selectors.board_updates)(
                board_id=uuid.UUID(board_id), after_sequence=after, until_sequence=upto, limit=500
            )
        except Compacted:
            session = self.boards.get(board_id)
            if session is not None:
                await self.send_state(session, state_vector=None)
            return None
        return [(u.sequence, dumps(update_frame(u))) for u in updates], (updates[-1].sequence if updates else after)

    async def update(self, frame: dict) -> None:
        """Queue the update in this process's batch and return at once: the socket goes on with
        its next frames (cursors do not wait for writes); the ack, or the error, is sent when the
        batch has committed, in the order of the socket's frames (core.batches.Answers)."""
        # No join needed (a client may flush its offline queue at once): the service checks access.
        ref = frame.get("client_msg_id", frame.get("id", frame.get("client_update_id")))
        try:
            board_id = _board_id(frame)
        except ApplicationError as error:
            future = asyncio.get_running_loop().create_future()
            future.set_result(error)
        else:
            future = update_batches().put(
                {
                    "user": self.socket.user,
                    "board_id": board_id,
                    "update": frame.get("update"),
                    "client_update_id": frame.get("client_update_id"),
                    "session": self.socket.socket_id,
                }
            )
        ref = ref if isinstance(ref, str) else None
        self.socket.answers.add(future, lambda result: self._answer(result, ref))

    async def _answer(self, result: Any, ref: str | None) -> None:
        if isinstance(result, ApplicationError):
            frame = {"type": "error", **result.as_dict(), "ref": ref}
        elif isinstance(result, Exception):  # a bug: the batcher answers every update itself
            frame = {"type": "error", **Internal().as_dict(), "ref": ref}
        else:
            frame = {"type": "board.update.ack", **update_ack(result[0])}
        await self.socket.send(text_data=dumps(frame))

    async def sync(self, frame: dict) -> None:
        board_id = _board_id(frame)
        params = validated(ChangesParams, frame)
        try:
            _board, updates, has_more, last = await database_sync_to_async(selectors.board_updates_page)(
                user=self.socket.user, board_id=board_id, after_sequence=params["after_sequence"], limit=params["limit"]
            )
        except Compacted:
            board, sequence, update = await database_sync_to_async(selectors.board_join)(
                user=self.socket.user, board_id=board_id, state_vector=None
            )
            local = _local_boards().get(board_id)
            awareness = local.awareness_list(exclude=self.socket.socket_id) if local else []
            state = {"type": "board.state", "board": board_id, "room": str(board.room_id), "sequence": sequence}
            await self.socket.send(text_data=dumps(state | {"update": b64encode(update), "awareness": awareness}))
            return
        page = {"type": "board.updates", "board": board_id, "updates": [sync_item(u) for u in updates]}
        await self.socket.send(text_data=dumps(page | {"has_more": has_more, "last_sequence": last}))

    async def awareness(self, frame: dict) -> None:
        board_id = _board_id(frame)
        if board_id not in self.boards:
            raise NotFound("Join the board first (board.join).")
        if self.socket.limits.take("awareness", time.monotonic()):
            return  # over 20 a second: dropped silently, like typing
        await self._announce(board_id, services.awareness_state_clean(frame.get("state")))

    async def _announce(self, board_id: str, state: dict | None) -> None:
        user = user_payload(self.socket.user)
        event = services.awareness_event(board_id=board_id, user=user, session=self.socket.socket_id, state=state)
        async with publishing():
            send_event([board_group(board_id)], event)

    async def leave(self, frame: dict) -> None:
        session = self.boards.get(_board_id(frame))
        if session is not None:
            await self.drop(session, announce=True)

    async def drop(self, session: BoardSession, *, announce: bool) -> None:
        """The socket leaves the board: no more of its events; others see its cursor go."""
        if self.boards.get(session.board_id) is not session:
            return
        del self.boards[session.board_id]
        self.sequencer.forget(session.board_id)
        await _detach(session)
        if session.doc_open:
            documents.close(session.board_id)
        if announce:
            try:
                await self._announce(session.board_id, None)
            except Exception:  # leaving must not fail (a socket closing while Redis is away)
                logger.warning("could not announce leaving board %s", session.board_id, exc_info=True)

    async def leave_room(self, room_id: str) -> None:
        """The user left the room (or the socket stops following it): leave its boards."""
        for session in [s for s in self.boards.values() if s.room_id == room_id]:
            await self.drop(session, announce=True)

    async def close(self) -> None:
        for session in list(self.boards.values()):
            await self.drop(session, announce=True)


def _board_id(frame: dict) -> str:
    value = frame.get("board")
    if value is None or value == "":
        raise InvalidInput('"board" is required.', fields={"board": ["This field is required."]})
    if not isinstance(value, str):
        raise InvalidInput('"board" must be a string.', fields={"board": ["Must be a string."]})
    return str(selectors.parse_board_id(value))  # canonical: an unknown shape is not_found


async def _on_join(socket: Socket, frame: dict) -> None:
    await socket.boards.join(frame)


async def _on_update(socket: Socket, frame: dict) -> None:
    await socket.boards.update(frame)


async def _on_sync(socket: Socket, frame: dict) -> None:
    await socket.boards.sync(frame)


async def _on_awareness(socket: Socket, frame: dict) -> None:
    await socket.boards.awareness(frame)


async def _on_leave(socket: Socket, frame: dict) -> None:
    await socket.boards.leave(frame)


# Composed into ChatConsumer.handlers and FRAME_KINDS (messaging.consumers).
FRAME_HANDLERS: dict[str, Callable[[Socket, dict], Awaitable[None]]] = {
    "board.join": _on_join,
    "board.update": _on_update,
    "board.sync": _on_sync,
    "board.awareness": _on_awareness,  # its own silent limit (BoardSessions.awareness)
    "board.leave": _on_leave,
}
FRAME_KINDS = {"board.join": "read", "board.sync": "read", "board.update": "board"}


def frame_limit(text: str) -> int:
    """The size limit of a text frame over the usual WS_MAX_FRAME_BYTES: BOARD_MAX_FRAME_BYTES,
    as it may be a board.update (a base64 Yjs update of up to 256 KB). The consumer parses it and
    refuses it (too_large, 1009) unless it is one."""
    return settings.BOARD_MAX_FRAME_BYTES


@on_reconnect
async def _catch_up_after_an_outage(hub: Hub, groups: list[str]) -> None:
    """Redis is back: updates published meanwhile are lost. Bring this process's sockets on the
    affected boards up to date from the database at once."""
    boards = _local_boards()
    for group in groups:
        if not group.startswith("board."):
            continue
        local = boards.get(group.split(".", 1)[1])
        if local is None:
            continue
        last = await database_sync_to_async(selectors.board_last_sequence)(board_id=local.board_id)
        for session in list(local.sessions):
            await session.catch_up(last)
