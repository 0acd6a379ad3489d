"""The one WebSocket a client opens: all of its rooms, multiplexed. Protocol: docs/protocol.md.

A thin adapter: it parses frames, calls services, and forwards events. Who may receive what is
decided by the services (which pick the groups) and by membership events on the user's own group.
"""

import asyncio
import json
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from boards import consumers as board_frames
from core import jsontext, logs, metrics, wire
from core.batches import Answers, Batches
from core.errors import ApplicationError, Internal, InvalidInput, RateLimited, Unavailable, is_outage
from core.events import call_service, dumps, room_group, user_group
from core.hub import Hub, get_hub, on_reconnect
from core.loops import PerLoop, per_loop
from core.ratelimit import Buckets, Strikes, take_all
from core.sequencer import Cursor, Sequencer
from core.threads import database_sync_to_async
from messaging import selectors, services
from messaging.params import ChangesParams, HistoryParams, validated
from messaging.payloads import change_frame, message_payload
from presence import services as presence
from rooms.selectors import rooms_last_sequence, user_rooms_states
from simulator import consumers as simulations

logger = logging.getLogger(__name__)

# Close codes (docs/protocol.md).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_REVOKED = 4403  # signed out, deactivated or password changed: the socket's credentials are gone
CLOSE_TOO_LARGE = 1009
CLOSE_SILENT = 4408
CLOSE_TOO_SLOW = 4429
CLOSE_FLOODING = 1008  # kept sending after RATE_LIMIT_FLOOD_STRIKES rate_limited answers
CLOSE_TRY_AGAIN = 1013  # PostgreSQL or Redis away while connecting: reconnect after a back-off

# Liveness is the client's business: it heartbeats every 30 s, and a socket that sends nothing
# at all for this long is closed (CLOSE_SILENT), dead peer or stuck client alike. This replaces
# WebSocket protocol pings, which cost a frame each way per socket for what the heartbeat
# already proves (docs/performance.md). Four missed beats, as browsers may delay a background
# tab's timers to once a minute.
SILENT_CLOSE_SECONDS = 120

# The budget (settings.RATE_LIMITS, core.ratelimit) each frame type draws on, besides "frame",
# which every frame does, whatever it is.
FRAME_KINDS = {
    "message.send": "send",
    "message.edit": "edit",
    "message.delete": "edit",
    "reaction.add": "edit",
    "reaction.remove": "edit",
    "typing": "typing",
    "receipt": "receipt",
    "sync": "read",
    "history": "read",
    "ping": "ping",
    **board_frames.FRAME_KINDS,
    **simulations.FRAME_KINDS,
}

# Frames handled while the writes of earlier frames wait for their batch (core.batches.Answers): the
# batched writes themselves (queued in frame order), and cursors. Any other frame waits until the
# earlier writes are answered, so that it sees them (a sync after a send, say).
UNORDERED = board_frames.UNORDERED | {"message.send", "reaction.add", "reaction.remove"}

# How long an out-of-order event waits for the ones before it before we read them from the
# database (core.sequencer, which orders a socket's rooms; doubled with each attempt).
GAP_WAIT_SECONDS = 0.2

RoomCursor = Cursor  # what a socket has delivered in one room (core.sequencer)


def gap_wait(attempt: int) -> Awaitable:
    return asyncio.sleep(GAP_WAIT_SECONDS * (2**attempt))


Page = tuple[list[tuple[int, str]], int]


async def _read_changes(user, room_id: str, after: int, upto: int) -> Page:
    messages, _, reached = await database_sync_to_async(selectors.changes_page)(
        user=user, room_id=room_id, after_sequence=after, until_sequence=upto, limit=100
    )
    return [(message.changed_sequence, dumps(change_frame(message))) for message in messages], reached


class SharedReads:
    """The gap reads of one process, shared. The connections of a room in a process follow the
    same live events, so when one is lost or late they all miss the same numbers and ask for the
    same (room, after, upto) at about the same time: the first asks PostgreSQL, the others wait
    for its page instead of each reading it again (under load, one read per socket was a spiral:
    slower servers, later events, more holes, more reads; docs/performance.md).

    The page is the room's, read with the first connection's access check; the others are
    connections that follow the room (a removal unsubscribes them), which is what live events
    of the room require too. If the first read is refused (that user is no longer a member), each
    waiting connection reads for itself."""

    def __init__(self) -> None:
        self.reads: dict[tuple[str, int, int], asyncio.Future[Page]] = {}

    async def read(self, user, room_id: str, after: int, upto: int) -> Page:
        key = (room_id, after, upto)
        shared = self.reads.get(key)
        if shared is None:
            task = asyncio.ensure_future(_read_changes(user, room_id, after, upto))
            self.reads[key] = task
            task.add_done_callback(lambda _: self.reads.pop(key, None) if self.reads.get(key) is task else None)
            return await asyncio.shield(task)  # a cancelled socket must not cancel the others' read
        try:
            return await asyncio.shield(shared)
        except ApplicationError:  # refused for the first reader: ask for ourselves
            return await _read_changes(user, room_id, after, upto)


shared_reads = per_loop(SharedReads)


async def fetch_changes(user, room_id: str, after: int, upto: int) -> Page:
    """A sequencer's fetch (core.sequencer) for a room: its changes after `after` up to `upto` as
    the user may read them (the socket's sync path), as numbered frames; one read for every
    connection of the process that asks for the same (SharedReads)."""
    return await shared_reads().read(user, room_id, after, upto)


def news(sent: dict[int, str], event: dict) -> bool:
    """For frames about another user that reach a connection once per room it shares with them
    (presence, profiles; the socket's and the event stream's handlers): whether this one is new
    to the connection (then it is noted in `sent`, by user), or a copy of what it last got."""
    if sent.get(event["user"]) == event["text"]:
        return False
    sent[event["user"]] = event["text"]
    return True


# A batch's cap: the rest of what waits goes in the next one.
MAX_BATCH = 200


async def _write(requests: list[tuple[str, dict]]) -> list[services.SendResult | services.ReactionResult]:
    """A batch of sends ("send") and reactions ("react"), each answered in its place."""
    sends = [request for kind, request in requests if kind == "send"]
    reactions = [request for kind, request in requests if kind == "react"]
    if sends:
        metrics.tally.observe(metrics.SEND_BATCH_SIZE, len(sends))
    try:
        sent, reacted = await services.awrite_many(sends=sends, reactions=reactions)
    except Exception as error:  # an outage past the database (Redis), or a bug: every frame gets it
        if not is_outage(error):
            logger.exception("a batch of writes failed")
            return [Internal()] * len(requests)
        logger.warning("a batch of %s writes failed: %s", len(requests), error)
        return [Unavailable()] * len(requests)
    answers = {"send": iter(sent), "react": iter(reacted)}
    return [next(answers[kind]) for kind, _ in requests]


# The message.send, reaction.add and reaction.remove frames of every socket in this process, in
# batches (core.batches): while one batch is in the database, the frames that arrive meanwhile
# wait and go together in the next one. Under load a batch costs one transaction and one commit
# however many frames it holds (messaging.services.awrite_many); when idle, a frame goes alone at
# once. Each frame still gets its own result, and its ack is sent only after the batch committed.
write_batches: PerLoop[Batches[tuple[str, dict], services.SendResult | services.ReactionResult]] = per_loop(
    lambda: Batches(_write, limit=MAX_BATCH)
)

# Each user's budgets on this process, shared by their sockets here; gone with the last of them.
_user_limits: PerLoop[weakref.WeakValueDictionary[int, Buckets]] = per_loop(weakref.WeakValueDictionary)


def user_limits(user_id: int) -> Buckets:
    limits = _user_limits().get(user_id)
    if limits is None:
        limits = _user_limits()[user_id] = Buckets(settings.RATE_LIMITS["user"])
    return limits


class Liveness:
    """This process's sockets, swept every SWEEP_SECONDS for ones silent for SILENT_CLOSE_SECONDS."""

    SWEEP_SECONDS = 15

    def __init__(self) -> None:
        self.sockets: set[ChatConsumer] = set()
        self.sweeper: asyncio.Task | None = None

    def add(self, socket: "ChatConsumer") -> None:
        self.sockets.add(socket)
        if self.sweeper is None:
            self.sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def discard(self, socket: "ChatConsumer") -> None:
        self.sockets.discard(socket)

    async def _sweep(self) -> None:
        try:
            while self.sockets:
                await asyncio.sleep(self.SWEEP_SECONDS)
                deadline = time.monotonic() - SILENT_CLOSE_SECONDS
                for socket in [socket for socket in self.sockets if socket.last_frame_at < deadline]:
                    self.sockets.discard(socket)
                    logger.info("closing a socket of user %s: silent for %ss", socket.user.pk, SILENT_CLOSE_SECONDS)
                    try:
                        await socket.close(code=CLOSE_SILENT)
                    except Exception:  # it closed meanwhile
                        logger.debug("socket already closed", exc_info=True)
        finally:
            self.sweeper = None


liveness = per_loop(Liveness)


class ChatConsumer(AsyncWebsocketConsumer):
    # Events reach sockets through this process's hub (core.hub), not through a channel-layer
    # channel per socket: no per-socket Redis subscription, receive task or dispatch.
    channel_layer_alias = None

    async def __call__(self, scope, receive, send) -> None:
        # Channels' own loop races the client's receive() against a channel-layer receive, with a
        # new task and an asyncio.wait() per frame and a second task per socket. With no channel
        # layer of our own there is one source, so a plain loop does: less CPU per frame, less
        # memory per socket (docs/performance.md).
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message: dict) -> None:
        # Channels closes stale database connections before every message in a thread hop of
        # its own; our database work already runs in database_sync_to_async, which does that.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message: dict) -> None:
        # Channels' own leaves the channel-layer groups (this consumer has none), then closes
        # stale database connections in a thread hop on asgiref's one thread: a hop per closed
        # socket that a reconnect storm queues by the thousand, for connections this consumer
        # never uses there (its database work runs in database_sync_to_async, which closes them).
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.send_lock = asyncio.Lock()
        # The socket's rooms, in number order (core.sequencer); `cursors` is its map of rooms.
        self.rooms = Sequencer(
            deliver=self._deliver_change, fetch=self._fetch_changes, wait=gap_wait, lock=self.send_lock
        )
        self.cursors = self.rooms.cursors
        self.presence_sent: dict[int, str] = {}
        self.profiles_sent: dict[int, str] | None = None  # user.profile frames sent, by user
        self.wire_server = None
        self.hub = get_hub()
        self.socket_id = uuid.uuid4().hex  # names this socket in presence
        self.last_frame_at = time.monotonic()
        self.limits = Buckets(settings.RATE_LIMITS["socket"])
        self.board_sessions: board_frames.BoardSessions | None = None  # made by the first board frame
        self.answers = Answers()  # to the frames whose writes wait for a batch, in the frames' order
        self.strikes = Strikes(settings.RATE_LIMIT_FLOOD_STRIKES, settings.RATE_LIMIT_FLOOD_SECONDS, time.monotonic)
        # Accept first: a refused handshake carries no close code, and clients deserve one.
        await self.accept()
        metrics.opened("socket")
        self.wire_server = wire.server_of(self.base_send)  # for pre-built frames (core.wire)
        if self.wire_server is not None:
            wire.settle(self.wire_server)  # less memory for the socket's life (core.wire)
        if self.scope.get("unavailable"):  # who this is could not be known (accounts.middleware)
            await self.close(code=CLOSE_TRY_AGAIN)
            return
        if self.user is None or not self.user.is_authenticated or not self.user.is_active:
            self.user = None
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        try:
            await self._start()
        except Exception as error:
            if not is_outage(error):
                raise
            logger.warning("closing a new socket of user %s: %s", self.user.pk, error)
            await self.close(code=CLOSE_TRY_AGAIN)

    async def _start(self) -> None:
        """Follow the user's rooms and say session.ready."""
        logs.bind_socket(self.socket_id, self.user.pk)  # every log of this socket names it
        liveness().add(self)
        self.user_limits = user_limits(self.user.pk)
        # Subscribe before reading the room state: an event published in between is then
        # received and, if already covered by the state, dropped as a duplicate.
        await self.hub.join(user_group(self.user.pk), self)
        rooms, unread = await selectors.asession_state(user_id=self.user.pk)
        for room_id, last_sequence in rooms.items():
            await self._subscribe(room_id, last_sequence)
        await self.send(
            text_data=dumps({"type": "session.ready", "user": self.user.pk, "rooms": rooms, "unread": unread})
        )
        # The rooms' groups were joined after their numbers were read: a change committed in
        # between was published to no socket of this process, and would show only with the room's
        # next change. Now that the socket hears its rooms, read their numbers again and fetch
        # what came meanwhile (one statement for the sockets that connect together).
        await self.rooms.read_behind(await selectors.arooms_last_sequence(user_id=self.user.pk))
        await presence.presence_heartbeat(user=self.user, socket_id=self.socket_id, active=True, rooms=rooms)

    @property
    def boards(self) -> board_frames.BoardSessions:
        """The boards this socket joined; made on first use, since most sockets never open one
        (about 1 KB less for every socket that does not: docs/performance.md)."""
        if self.board_sessions is None:
            self.board_sessions = board_frames.BoardSessions(self)
        return self.board_sessions

    async def disconnect(self, code: int) -> None:
        metrics.closed("socket", code)
        if getattr(self, "user", None) is None:
            return
        liveness().discard(self)
        self.answers.cancel()
        if self.board_sessions is not None:
            await self.board_sessions.close()
        for room_id in list(self.cursors):
            await self._unsubscribe(room_id)
        await self.hub.leave(user_group(self.user.pk), self)
        try:
            await presence.presence_disconnect(user=self.user, socket_id=self.socket_id)
        except Exception as error:
            if not is_outage(error):
                raise
            # Redis away or too slow (100,000 sockets closing at once): the lease runs out by itself.
            logger.info("presence of a closed socket of user %s not cleared: %s", self.user.pk, error)

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False) -> None:
        if text_data is not None:
            metrics.frame_sent(text_data)
        if text_data is not None and not close and self.wire_server is not None:
            self._write(wire.text_frame(text_data))
            return
        # An event can reach us after the client hung up but before the server's
        # websocket.disconnect does. Sending then raises (e.g. autobahn's Disconnected); letting
        # that crash the consumer would skip disconnect() and its presence cleanup.
        try:
            if text_data is not None and not close:
                await self.base_send({"type": "websocket.send", "text": text_data})
            else:
                await super().send(text_data=text_data, bytes_data=bytes_data, close=close)
        except Exception:
            logger.debug("dropped a frame for a socket that is closing", exc_info=True)

    def _write(self, frame: bytes) -> None:
        """Write a frame straight to the uvicorn socket (core.wire). Never waits: a client that
        does not read must not hold back the hub's other sockets, so it is closed instead once
        it has WS_MAX_BACKLOG_BYTES unread."""
        server = self.wire_server
        if wire.write(server, frame) and wire.backlog(server) > settings.WS_MAX_BACKLOG_BYTES:
            user = getattr(self.user, "pk", None)  # None on a socket refused at connect
            logger.info("closing a socket of user %s: too slow (%s bytes unread)", user, wire.backlog(server))
            metrics.SLOW["socket"].inc()
            wire.close(server, CLOSE_TOO_SLOW, "too slow")

    async def _relay(self, event: dict) -> None:
        """Send an event's text, the same for every socket the hub hands the event to: on uvicorn
        as a frame built once for all of them (kept in the event, as room_sequenced's is)."""
        if self.wire_server is None:
            await self.send(text_data=event["text"])
            return
        metrics.frame_sent(event["text"])
        self._write(wire.event_frame(event))

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        if getattr(self, "wire_server", None) is not None:
            # Not through ASGI send, which waits for a paused socket to drain.
            wire.close(self.wire_server, 1000 if code is None or code is True else code, reason or "")
        else:
            await super().close(code=code, reason=reason)

    # -- client -> server ------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.user is None:  # refused at connect; the close is on its way
            return
        now = self.last_frame_at = time.monotonic()
        wait = self.limits.take("frame", now)
        if wait:
            await self._refuse(wait)
            return
        if text_data is None:
            await self._error(ApplicationError("Frames must be JSON text.", code="invalid_frame"))
            return
        limit = settings.WS_MAX_FRAME_BYTES
        # A character is at most 4 bytes in UTF-8: most frames need no encoding to be measured.
        big = len(text_data) * 4 > limit and (len(text_data) > limit or len(text_data.encode()) > limit)
        if big:  # only board.update frames may be bigger (checked once parsed, below)
            limit = board_frames.frame_limit(text_data)
            if len(text_data) > limit or len(text_data.encode()) > limit:
                await self._error(ApplicationError(f"Frames are at most {limit} bytes.", code="too_large"))
                await self.close(code=CLOSE_TOO_LARGE)
                return
        try:
            frame = jsontext.loads(text_data)
        except ApplicationError as error:  # not JSON, nested too deeply, or text we cannot store
            await self._error(error)
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self._error(ApplicationError('A frame is a JSON object with a string "type".', code="invalid_frame"))
            return
        if self.answers.task is not None and frame["type"] not in UNORDERED:
            await self.answers.settle()  # earlier writes are answered (and committed) first
        if big and frame["type"] != "board.update":
            limit = settings.WS_MAX_FRAME_BYTES
            await self._error(ApplicationError(f"Frames are at most {limit} bytes.", code="too_large"))
            await self.close(code=CLOSE_TOO_LARGE)
            return
        metrics.frame_received(frame["type"])
        logs.bind_room(frame.get("room"))
        handler = self.handlers.get(frame["type"])
        if handler is None:
            await self._error(ApplicationError(f"Unknown frame type {frame['type'][:50]!r}.", code="unknown_type"))
            return
        ref = _ref(frame)
        kind = FRAME_KINDS.get(frame["type"])
        wait = take_all(now, kind, self.limits, self.user_limits) if kind else 0.0
        if wait:
            await self._refuse(wait, ref=ref)
            return
        try:
            await handler(self, frame)
        except ApplicationError as error:
            await self._error(error, ref=ref)
        except Exception as error:  # keep the socket; the client retries (sends are idempotent)
            if is_outage(error):
                logger.warning("frame %s failed: %s", frame["type"], error)
                await self._error(Unavailable(), ref=ref)
            else:
                logger.exception("frame %s failed", frame["type"])
                await self._error(Internal(), ref=ref)

    async def _refuse(self, wait: float, *, ref: str | None = None) -> None:
        """Over a rate limit: rate_limited with the time to wait, or, for a client that keeps
        going regardless, the end of the socket."""
        await self.answers.settle()  # after the answers to earlier frames
        if self.strikes.strike():
            logger.info("closing a socket of user %s: flooding", self.user.pk)
            await self.close(code=CLOSE_FLOODING)
            return
        await self._error(RateLimited(wait), ref=ref)

    async def _error(self, error: ApplicationError, *, ref: str | None = None) -> None:
        """The same error body as REST's (core.api), plus the `ref` of the failed frame, after
        the answers to earlier frames."""
        await self.answers.settle()
        await self._send_error(error, ref=ref)

    async def _send_error(self, error: ApplicationError, *, ref: str | None) -> None:
        metrics.socket_error(error.code)
        await self.send(text_data=dumps({"type": "error", **error.as_dict(), "ref": ref}))

    async def on_message_send(self, frame: dict) -> None:
        room = _require_str(frame, "room")
        # A message with attachments: not batched (the ORM's path binds its uploads).
        if frame.get("attachments") is not None:
            await self.answers.settle()
            message, _created = await call_service(
                services.message_send,
                user=self.user,
                room_id=room,
                content=frame.get("content"),
                client_msg_id=frame.get("client_msg_id"),
                reply_to=frame.get("reply_to"),
                attachments=frame.get("attachments"),
            )
            await self._ack("message.ack", room, message)
            return
        request = {"user": self.user, "room_id": room, "content": frame.get("content")}
        request["client_msg_id"] = frame.get("client_msg_id")
        if frame.get("reply_to") is not None:  # a reply: its thread's root changes in the same statement
            request["reply_to"] = frame["reply_to"]
        self._write_later(("send", request), "message.ack", room, _ref(frame))

    async def on_message_edit(self, frame: dict) -> None:
        room = _require_str(frame, "room")
        message = await call_service(
            services.message_edit,
            user=self.user,
            room_id=room,
            message_id=_require_str(frame, "id"),
            content=frame.get("content"),
        )
        await self._ack("message.edit.ack", room, message)

    async def on_message_delete(self, frame: dict) -> None:
        room = _require_str(frame, "room")
        message = await call_service(
            services.message_delete, user=self.user, room_id=room, message_id=_require_str(frame, "id")
        )
        await self._ack("message.delete.ack", room, message)

    async def on_reaction(self, frame: dict) -> None:
        """reaction.add / reaction.remove: answered with reaction.ack (the message as it now is)."""
        room = _require_str(frame, "room")
        request = {
            "user": self.user,
            "room_id": room,
            "message_id": _require_str(frame, "id"),
            "emoji": frame.get("emoji"),
            "present": frame["type"] == "reaction.add",
        }
        self._write_later(("react", request), "reaction.ack", room, _ref(frame))

    def _write_later(self, request: tuple[str, dict], ack: str, room: str, ref: str | None) -> None:
        """Queue the write in this process's batch (write_batches) and go on with the socket's
        next frames at once: a reply sent right after a reaction goes in the reaction's batch, not
        the one after. The answer (`ack`, or the error) is sent once the batch committed, in the
        order of the socket's frames (core.batches.Answers)."""

        async def answer(result: object) -> None:
            if isinstance(result, tuple):  # a send's (message, created)
                result = result[0]
            if isinstance(result, ApplicationError):
                await self._send_error(result, ref=ref)
            elif isinstance(result, Exception):  # a bug: _write answers every frame itself
                logger.error("a %s failed: %s", request[0], result)
                await self._send_error(Internal(), ref=ref)
            else:
                await self._ack(ack, room, result)

        self.answers.add(write_batches().put(request), answer)

    async def _ack(self, frame_type: str, room: str, message) -> None:
        """To the socket that asked, after commit: the message as the change left it (unchanged
        for a resend, a no-op edit or a second delete, which announce nothing to the room)."""
        ack = {"type": frame_type, "room": room, "client_msg_id": str(message.client_msg_id)}
        await self.send(text_data=dumps(ack | {"id": str(message.id), "message": message_payload(message)}))

    async def on_sync(self, frame: dict) -> None:
        room = _require_str(frame, "room")
        params = validated(ChangesParams, frame)
        after, has_more = params["after_sequence"], True
        while has_more:
            messages, has_more, after = await database_sync_to_async(selectors.changes_page)(
                user=self.user, room_id=room, after_sequence=after, limit=params["limit"]
            )
            batch = {
                "type": "sync.batch",
                "room": room,
                "events": [change_frame(m) for m in messages],
                "has_more": has_more,
                "last_sequence": after,
            }
            await self.send(text_data=dumps(batch))
            cursor = self.cursors.get(room)
            if cursor is not None and cursor.last is not None and after > cursor.last:
                # The client has every change up to `after` now. A sync reads up to the room's
                # latest number, past what this socket delivered live (a reconnecting browser
                # syncs while the room goes on): the live events up to `after` would only repeat
                # the batch, so the socket goes on from there, as after a read of its own.
                Sequencer.restart(cursor, after)
                await self.rooms.drain(room, cursor)

    async def on_history(self, frame: dict) -> None:
        room = _require_str(frame, "room")
        params = validated(HistoryParams, frame)
        messages, has_more = await database_sync_to_async(selectors.messages_page)(
            user=self.user, room_id=room, **params
        )
        page = {"type": "history.page", "room": room, "messages": [message_payload(m) for m in messages]}
        await self.send(text_data=dumps(page | {"has_more": has_more}))

    async def on_receipt(self, frame: dict) -> None:
        await call_service(
            services.receipt_update,
            user=self.user,
            room_id=_require_str(frame, "room"),
            delivered_sequence=frame.get("delivered_sequence"),
            read_sequence=frame.get("read_sequence"),
        )

    async def on_typing(self, frame: dict) -> None:
        await call_service(presence.typing_notify, user=self.user, room_id=_require_str(frame, "room"))

    async def on_heartbeat(self, frame: dict) -> None:
        presence.heartbeats().beat(user=self.user, socket_id=self.socket_id, active=frame.get("active") is not False)

    async def on_ping(self, frame: dict) -> None:
        """Is this socket alive? Clients ask only while an answer is overdue or after a long
        silence (docs/protocol.md), so idle sockets stay cheap; the pong follows every frame
        queued before it."""
        await self.send(text_data='{"type":"pong"}')

    handlers: dict[str, Callable[["ChatConsumer", dict], Awaitable[None]]] = {
        "message.send": on_message_send,
        "message.edit": on_message_edit,
        "message.delete": on_message_delete,
        "reaction.add": on_reaction,
        "reaction.remove": on_reaction,
        "sync": on_sync,
        "history": on_history,
        "receipt": on_receipt,
        "typing": on_typing,
        "heartbeat": on_heartbeat,
        "ping": on_ping,
        **board_frames.FRAME_HANDLERS,
        **simulations.FRAME_HANDLERS,
    }

    # -- hub -> socket --------------------------------------------------------------------

    async def hub_event(self, event: dict) -> None:
        await self.event_handlers[event["type"]](self, event)

    async def room_sequenced(self, event: dict) -> None:
        """A numbered room change: delivered strictly in number order, holes filled from the database."""
        cursor = self.cursors.get(event["room"])
        if cursor is None:
            return
        number = event["seq"]
        if self.rooms.advance(cursor, number):
            # The common case, kept short (it runs once per socket per event): the next number,
            # nothing held back. The frame is built once per event for all the hub's sockets.
            if self.wire_server is not None:
                self._write(wire.event_frame(event))
                return
            async with self.send_lock:  # ASGI send (not uvicorn) can wait: keep numbers in order
                message = event.get("wire") or event.setdefault(
                    "wire", {"type": "websocket.send", "text": event["text"]}
                )
                try:
                    await self.base_send(message)
                except Exception:  # closing: see send()
                    logger.debug("dropped a frame for a socket that is closing", exc_info=True)
            return
        await self.rooms.offer(event["room"], cursor, number, event["text"])

    async def room_relay(self, event: dict) -> None:
        """An unnumbered room event (members, room edits, receipts, typing)."""
        room_id = event["room"]
        if room_id not in self.cursors or event.get("exclude_user") == self.user.pk:
            return
        if event.get("gone_user") == self.user.pk:  # we were removed; the room.removed event may be lost
            await self._unsubscribe(room_id)
            await self.send(text_data=dumps({"type": "room.removed", "room": room_id}))
            return
        await self._relay(event)

    async def user_relay(self, event: dict) -> None:
        if profile := event.get("profile"):  # my name or avatar changed (accounts.services): send it from now on
            self.user.display_name, self.user.avatar = profile["display_name"], profile["avatar"]
        await self._relay(event)

    async def user_presence(self, event: dict) -> None:
        """Sent to every room the user is in; someone sharing several rooms gets it once."""
        if news(self.presence_sent, event):
            await self._relay(event)

    async def user_profile(self, event: dict) -> None:
        """Someone's name or picture changed (accounts.services): sent to each of their rooms, so
        someone sharing several rooms gets it once; their own sockets have it from `user.relay`."""
        if event["user"] == self.user.pk:
            return
        self.profiles_sent = self.profiles_sent or {}  # made by the first one: few sockets get one
        if news(self.profiles_sent, event):
            await self._relay(event)

    async def user_membership(self, event: dict) -> None:
        """This user joined, left or changed role in a room: follow it without reconnecting."""
        room_id = event["room"]
        if event["role"] is None:
            await self._unsubscribe(room_id)
        elif room_id not in self.cursors:
            frame = json.loads(event["text"])
            await self._subscribe(room_id, frame["room"]["last_sequence"])
        await self._relay(event)

    async def reconcile(self, state: dict | None) -> None:
        """After an outage, make this socket agree with the database: closed if the account is no
        longer active, following the rooms the user joined or left meanwhile (`state`: rooms.selectors
        .user_rooms_states for this user, None if the user is gone)."""
        if state is None or not state["active"]:
            await self.user_revoked({})
            return
        rooms = state["rooms"]
        for room_id in [room_id for room_id in self.cursors if room_id not in rooms]:
            await self._unsubscribe(room_id)
            await self.send(text_data=dumps({"type": "room.removed", "room": room_id}))
        for room_id, (room, role) in rooms.items():
            if room_id not in self.cursors:
                await self._subscribe(room_id, room["last_sequence"])
                await self.send(text_data=dumps({"type": "room.added", "room": room | {"role": role}}))

    async def user_revoked(self, event: dict) -> None:
        """The user signed out, was deactivated or changed password (accounts.services)."""
        logger.info("closing a socket of user %s: credentials changed", self.user.pk)
        await self.close(code=CLOSE_REVOKED)

    event_handlers: dict[str, Callable[["ChatConsumer", dict], Awaitable[None]]] = {
        "room.sequenced": room_sequenced,
        "room.relay": room_relay,
        "user.relay": user_relay,
        "user.presence": user_presence,
        "user.profile": user_profile,
        "user.membership": user_membership,
        "user.revoked": user_revoked,
    }

    # -- ordering (core.sequencer) ------------------------------------------------------------

    def _deliver_change(self, room_id: str, number: int, text: str | None) -> Awaitable[None] | None:
        return None if text is None else self.send(text_data=text)

    def _fetch_changes(self, room_id: str, after: int, upto: int) -> Awaitable[tuple[list[tuple[int, str]], int]]:
        metrics.GAPS["socket"].inc()
        return fetch_changes(self.user, room_id, after, upto)

    async def _subscribe(self, room_id: str, last_sequence: int) -> None:
        self.rooms.follow(room_id, last_sequence)
        await self.hub.join(room_group(room_id), self)

    async def _unsubscribe(self, room_id: str) -> None:
        if self.board_sessions is not None:
            await self.board_sessions.leave_room(room_id)
        self.rooms.forget(room_id)
        await self.hub.leave(room_group(room_id), self)


metrics.known_frame_types(ChatConsumer.handlers)


@on_reconnect
async def _catch_up_after_an_outage(hub: Hub, groups: list[str]) -> None:
    """Redis is back: the events of these groups published meanwhile are lost. Bring this
    process's sockets up to date at once, rather than at each room's next event: each lagging
    room's changes are read once and handed to all its sockets; each user's rooms and account are
    checked (memberships, deactivation) once."""
    rooms = [group.split(".", 1)[1] for group in groups if group.startswith("room.")]
    if rooms:
        lasts = await database_sync_to_async(rooms_last_sequence)(room_ids=rooms)
        for room_id, last in lasts.items():
            sockets = [m for m in hub.groups.get(room_group(room_id), ()) if isinstance(m, ChatConsumer)]
            behind = [s for s in sockets if room_id in s.cursors and (s.cursors[room_id].last or 0) < last]
            after = min((s.cursors[room_id].last or 0 for s in behind), default=last)
            while after < last:
                messages, _, reached = await database_sync_to_async(selectors.room_changes)(
                    room_id=room_id, after_sequence=after, until_sequence=last, limit=500
                )
                items = [(message.changed_sequence, dumps(change_frame(message))) for message in messages]
                for socket in behind:
                    await socket.rooms.catch_up(room_id, items, reached)
                after = reached
    users = [int(group.split(".", 1)[1]) for group in groups if group.startswith("user.")]
    if users:
        states = await database_sync_to_async(user_rooms_states)(user_ids=users)
        for user_id in users:
            for socket in [m for m in hub.groups.get(user_group(user_id), ()) if isinstance(m, ChatConsumer)]:
                await socket.reconcile(states.get(user_id))


def _ref(frame: dict) -> str | None:
    """What a frame's answer names it by: its client_msg_id, message id or client_update_id."""
    ref = frame.get("client_msg_id", frame.get("id", frame.get("client_update_id")))
    return ref if isinstance(ref, str) else None


def _require_str(frame: dict, name: str) -> str:
    value = frame.get(name)
    if value is None or value == "":
        raise InvalidInput(f'"{name}" is required.', fields={name: ["This field is required."]})
    if not isinstance(value, str):
        raise InvalidInput(f'"{name}" must be a string.', fields={name: ["Must be a string."]})
    return value
