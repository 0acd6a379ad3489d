"""The one sequencer for numbered events: a connection's rooms (messaging.consumers, the socket;
transports.streams, SSE and long-poll) and boards (boards.consumers; transports.streams).

Numbers commit in order (a room's or a board's own sequence), but live events (pub/sub, at most
once, from several server processes) may arrive late, twice or never. A `Sequencer` holds, per
key (a room or board id), a `Cursor`: the last number delivered (`last`) and the events that came
early (`pending`). It hands events to its `deliver` callback strictly in number order, each once;
an event that arrives after a hole waits; the hole gets a wait (`wait`, GAP_WAIT_SECONDS doubling
per attempt up to GAP_MAX_ATTEMPTS doublings) to fill by itself, then is read from PostgreSQL
through the `fetch` callback, again and again until it fills. A number missing from what `fetch` returns was
superseded (a later change of the same message carries its own number): the cursor moves past it.

The hot path is the caller's: `advance()` (no await, no allocation) says whether an event is the
next one with nothing held back, and the caller delivers it itself (a socket writes a frame built
once for all its process's sockets); anything else goes through `offer()`.

Callbacks:

- `deliver(key, number, item)`: deliver one event, in order. `item` None means nothing to send
  (a socket's own board update, or a number passed over by `catch_up`): the position moved. May
  return an awaitable (awaited before the next).
- `fetch(key, after, upto)`: the stored events numbered in (after, upto], as
  ([(number, item)], reached): every number up to `reached` is in the list or superseded. May
  raise ApplicationError (no longer a member: given up; the removal event is on its way). Returning
  None gives up too (the caller delivered something else instead, e.g. a whole board state).
- `wait(attempt)`: the wait before reading a hole (`default_wait`).
"""

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from core.errors import ApplicationError, Unavailable

logger = logging.getLogger(__name__)

# How long an out-of-order event waits for the ones before it before we read them from the
# database (doubling with each attempt that brought nothing), and how many attempts.
GAP_WAIT_SECONDS = 0.2
GAP_MAX_ATTEMPTS = 5

Deliver = Callable[[str, int, Any], Awaitable[None] | None]
Fetch = Callable[[str, int, int], Awaitable[tuple[Iterable[tuple[int, Any]], int] | None]]
Wait = Callable[[int], Awaitable[Any]]


def default_wait(attempt: int) -> Awaitable[Any]:
    return asyncio.sleep(GAP_WAIT_SECONDS * (2**attempt))


class Cursor:
    """What has been delivered of one key: every number up to `last`, in order. `last` None: not
    started (a board being joined): events wait in `pending` until `restart()`."""

    __slots__ = ("last", "pending", "gap_task", "gap_attempts")

    def __init__(self, last: int | None) -> None:
        self.last = last
        self.pending: dict[int, Any] = {}
        self.gap_task: asyncio.Task | None = None
        self.gap_attempts = 0


class Sequencer:
    __slots__ = ("cursors", "deliver", "fetch", "wait", "lock", "name")

    def __init__(
        self,
        *,
        deliver: Deliver,
        fetch: Fetch,
        wait: Wait = default_wait,
        lock: asyncio.Lock | None = None,
        name: str = "room",
    ) -> None:
        self.cursors: dict[str, Cursor] = {}
        self.deliver = deliver
        self.fetch = fetch
        self.wait = wait
        # Held while delivering out of the hot path, so that a caller's own in-order deliveries
        # (which take it too when they may wait) never interleave with a drain.
        self.lock = lock
        self.name = name  # for the log

    # -- keys ------------------------------------------------------------------------------------

    def follow(self, key: str, last: int | None) -> Cursor:
        """Deliver `key`'s events after `last` (None: after `restart()`)."""
        old = self.cursors.get(key)
        if old is not None and old.gap_task is not None:
            old.gap_task.cancel()
        cursor = self.cursors[key] = Cursor(last)
        return cursor

    def forget(self, key: str) -> Cursor | None:
        cursor = self.cursors.pop(key, None)
        if cursor is not None and cursor.gap_task is not None:
            cursor.gap_task.cancel()
        return cursor

    def forget_all(self) -> None:
        for key in list(self.cursors):
            self.forget(key)

    @staticmethod
    def suspend(cursor: Cursor) -> None:
        """Hold every event back until `restart()` (a board's state is being read again)."""
        cursor.last = None

    @staticmethod
    def restart(cursor: Cursor, last: int) -> None:
        """Everything up to `last` reached the client another way (a whole board state): go on
        from there (call `drain()` after delivering that). Never moves back."""
        cursor.last = last = max(last, cursor.last or 0)
        for number in [number for number in cursor.pending if number <= last]:
            del cursor.pending[number]

    # -- live events ----------------------------------------------------------------------------

    @staticmethod
    def advance(cursor: Cursor, number: int) -> bool:
        """The hot path: True if `number` is the next one and nothing is held back. The cursor has
        moved to it and the caller delivers it now; else the caller `offer()`s it."""
        last = cursor.last
        if last is not None and number == last + 1 and not cursor.pending:
            cursor.last = number
            return True
        return False

    async def offer(self, key: str, cursor: Cursor, number: int, item: Any) -> None:
        """A live event that is not simply the next one: a duplicate or stale one is dropped, an
        early one waits for those before it."""
        last = cursor.last
        if last is not None and number <= last:
            return
        cursor.pending[number] = item
        if last is not None:
            await self.drain(key, cursor)

    async def drain(self, key: str, cursor: Cursor) -> None:
        """Deliver what waits and is next; if a hole remains, see to it that it gets filled."""
        pending = cursor.pending
        if cursor.last is None:
            return
        if cursor.last + 1 in pending:
            if self.lock is None:
                await self._deliver_next(key, cursor)
            else:
                async with self.lock:
                    await self._deliver_next(key, cursor)
        if pending and cursor.gap_task is None and cursor.last is not None:
            # In a context of its own: the gap belongs to this connection, not to whoever delivered
            # the event that revealed it (e.g. a REST request's thread publishing through async_to_sync).
            cursor.gap_task = asyncio.create_task(self._fill_gap(key, cursor), context=contextvars.Context())

    async def _deliver_next(self, key: str, cursor: Cursor) -> None:
        pending = cursor.pending
        while cursor.last is not None and cursor.last + 1 in pending:
            number = cursor.last = cursor.last + 1
            cursor.gap_attempts = 0
            result = self.deliver(key, number, pending.pop(number))
            if result is not None:
                await result

    # -- reading from the database --------------------------------------------------------------

    async def _fill_gap(self, key: str, cursor: Cursor) -> None:
        """An event arrived after a hole. Numbers commit in order, so everything before it is in
        the database: if pub/sub lost some (or they are just late), read them there.

        Never given up while the key is followed: a read that brings nothing (live events filled
        the hole first, or the read was slow) or that fails (PostgreSQL away) is tried again, the
        wait doubling up to its cap, until the hole fills. Giving up would leave every later event
        of the key waiting behind the hole for good: the connection would silently stop
        delivering it (seen under overload: tests/test_sequencer_liveness.py)."""
        again = True
        try:
            awaited = (cursor.last or 0) + 1
            await self.wait(min(cursor.gap_attempts, GAP_MAX_ATTEMPTS - 1))
            if not cursor.pending or self.cursors.get(key) is not cursor or cursor.last is None:
                return
            if cursor.last >= awaited:
                # The hole we waited for filled meanwhile (events from two server processes often
                # arrive out of order); a later hole gets a wait of its own before any database read.
                # (Not through the drain after `finally`: a return skips it.)
                cursor.gap_task = None
                await self.drain(key, cursor)
                return
            before = cursor.last
            try:
                await self.read_up_to(key, min(cursor.pending) - 1)
            except ApplicationError as error:
                if not isinstance(error, Unavailable):  # e.g. no longer a member: its removal is on its way
                    again = False
                    return
                logger.warning("reading a gap in %s %s failed: %s", self.name, key, error)
            except Exception:  # the database's own errors: the next attempt may succeed
                logger.warning("reading a gap in %s %s failed", self.name, key, exc_info=True)
            if cursor.last is not None and cursor.last > before:
                cursor.gap_attempts = 0  # progress, whoever made it (this read or live events)
            else:
                cursor.gap_attempts += 1
                if cursor.gap_attempts == GAP_MAX_ATTEMPTS:
                    logger.error("could not fill a gap in %s %s after %s yet", self.name, key, cursor.last)
        finally:
            # One read at a time per key: the task stays registered until it is done.
            if cursor.gap_task is asyncio.current_task():
                cursor.gap_task = None
        if again and self.cursors.get(key) is cursor:
            await self.drain(key, cursor)  # a hole left: another attempt

    async def read_up_to(self, key: str, upto: int) -> None:
        """Deliver every stored event of `key` after the cursor up to `upto` (page by page, through
        `fetch`), in order with whatever live events arrive meanwhile. ApplicationError: see fetch."""
        cursor = self.cursors.get(key)
        while cursor is not None and cursor.last is not None and cursor.last < upto:
            page = await self.fetch(key, cursor.last, upto)
            if page is None or self.cursors.get(key) is not cursor or cursor.last is None:
                return
            items, reached = page
            if reached <= cursor.last:
                break  # nothing new (live events got there first, or the read saw no more)
            cursor.gap_attempts = 0  # progress: a long gap may take several pages
            await self._apply(key, cursor, items, reached)
        if cursor is not None:
            await self.drain(key, cursor)

    async def read_behind(self, lasts: dict[str, int]) -> None:
        """`read_up_to` for every followed key whose cursor is behind its number in `lasts` (e.g.
        read again after joining the keys' groups: a change committed before the join reached no
        one). A key that may no longer be read is skipped (fetch's ApplicationError: the removal
        is on its way)."""
        for key, upto in lasts.items():
            cursor = self.cursors.get(key)
            if cursor is None or cursor.last is None or cursor.last >= upto:
                continue
            try:
                await self.read_up_to(key, upto)
            except ApplicationError:
                pass

    async def catch_up(self, key: str, items: Iterable[tuple[int, Any]], reached: int) -> None:
        """Every event of `key` up to `reached` was read from the database: `items` (a number
        missing from them was superseded). Deliver what has not been, in order, and move the
        cursor to `reached` (one read can serve every connection of a process: items are shared)."""
        cursor = self.cursors.get(key)
        if cursor is None or cursor.last is None:
            return
        await self._apply(key, cursor, items, reached)
        await self.drain(key, cursor)

    async def _apply(self, key: str, cursor: Cursor, items: Iterable[tuple[int, Any]], reached: int) -> None:
        if self.lock is None:
            await self._apply_locked(key, cursor, items, reached)
        else:
            async with self.lock:
                await self._apply_locked(key, cursor, items, reached)

    async def _apply_locked(self, key: str, cursor: Cursor, items: Iterable[tuple[int, Any]], reached: int) -> None:
        if cursor.last is None:
            return
        pending = cursor.pending
        # Live events may have been delivered while we read: never deliver a number twice.
        for number, item in items:
            if number > cursor.last:
                pending.setdefault(number, item)
        for number in sorted(number for number in pending if number <= reached):
            item = pending.pop(number)
            if cursor.last is not None and number > cursor.last:
                cursor.last = number
                result = self.deliver(key, number, item)
                if result is not None:
                    await result
        if cursor.last is not None and reached > cursor.last:
            cursor.last = reached
            result = self.deliver(key, reached, None)  # numbers superseded: the position moves
            if result is not None:
                await result
