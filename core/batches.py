"""Work that many callers ask for at once, done together: the requests made in one tick of the event
loop, and those made while a batch is running, go in the next batch.

When idle a request goes alone at once (one task hop later); under load each batch costs one
round trip however many requests it holds. A new socket's reads (core.asyncdb.Lookups) and its
first and last presence beats (presence.services) go this way, so a connection storm's hundreds
of handshakes in flight share a few statements and script calls instead of making three each; so
do the sockets' sends and reactions (messaging.consumers.write_batches), a batch of them one
transaction and one commit, and their board updates (boards.consumers.update_batches). A socket's
answers to such frames go out in its frames' order (`Answers`) while it goes on with its next
frames.
"""

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar, cast

logger = logging.getLogger(__name__)

Request = TypeVar("Request")
Result = TypeVar("Result")


class Batches(Generic[Request, Result]):
    """`run(requests)` answers a batch, one result per request in order; if it raises, every
    request of the batch gets the error; `limit` caps a batch (the rest go in the next). One
    instance per event loop (core.loops.per_loop)."""

    def __init__(self, run: Callable[[list[Request]], Awaitable[list[Result]]], limit: int | None = None) -> None:
        self.run, self.limit = run, limit
        self.waiting: list[tuple[Request, asyncio.Future[Result]]] = []
        self.runner: asyncio.Task | None = None

    async def submit(self, request: Request) -> Result:
        return await self.put(request)

    def put(self, request: Request) -> asyncio.Future[Result]:
        """Queue `request` now (requests go in the order they were put) and return its result's
        future, for a caller that goes on before the result is in."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self.waiting.append((request, future))
        if self.runner is None:  # a fresh context: not the first caller's (its log bindings, its deadline)
            self.runner = loop.create_task(self._run(), context=contextvars.Context())
        return future

    async def _run(self) -> None:
        batch: list[tuple[Request, asyncio.Future[Result]]] = []
        try:
            while self.waiting:
                if cast(asyncio.Task, asyncio.current_task()).cancelling():
                    # The loop is closing; a thread hop on the way (database_sync_to_async) may
                    # have swallowed the cancellation. Nothing more is started.
                    raise asyncio.CancelledError
                cut = len(self.waiting) if self.limit is None else max(1, self.limit)
                batch, self.waiting = self.waiting[:cut], self.waiting[cut:]
                try:
                    results = await self.run([request for request, _ in batch])
                except Exception as error:
                    for _, future in batch:
                        if not future.done():  # not if its caller went away meanwhile
                            future.set_exception(error)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self.runner = None
            # Cancelled (the loop is closing): no caller waits for what will never run. After a
            # normal end every future here is done already, and cancel() leaves it be.
            for _, future in batch + self.waiting:
                future.cancel()
            self.waiting = []


class Answers:
    """One socket's answers to its frames that wait for a batch (board.update, message.send,
    reactions), sent in the order the frames came while the socket goes on with its next frames:
    a client's frames sent back to back then share a batch instead of waiting for each other's.
    `answer(result)` sends a frame's answer once its future is done (the future's exception is
    its result); a frame that must see the writes before it (`settle`) waits for all of them."""

    def __init__(self) -> None:
        self.queue: deque[tuple[asyncio.Future, Callable[[Any], Awaitable[None]]]] = deque()
        self.task: asyncio.Task | None = None

    def add(self, future: asyncio.Future, answer: Callable[[Any], Awaitable[None]]) -> None:
        self.queue.append((future, answer))
        if self.task is None:  # a fresh context: not the frame's (its log bindings, its deadline)
            self.task = asyncio.get_running_loop().create_task(self._run(), context=contextvars.Context())

    async def _run(self) -> None:
        try:
            while self.queue:
                future, answer = self.queue[0]
                try:
                    result = await asyncio.shield(future)  # a cancelled answer leaves the write be
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    result = error
                self.queue.popleft()
                try:
                    await answer(result)
                except Exception:  # the socket closed meanwhile
                    logger.debug("could not answer a frame", exc_info=True)
        finally:
            self.task = None

    async def settle(self) -> None:
        """Wait until every queued frame has been answered."""
        while self.task is not None:
            await asyncio.wait([self.task])

    def cancel(self) -> None:
        """The socket is gone: the writes go on, their answers are moot."""
        if self.task is not None:
            self.task.cancel()
        self.queue.clear()
