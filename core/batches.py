"""Work that many callers ask for at once, done together: the requests made in one tick of the event
loop, and those made while a batch is running, go in the next batch.

When idle a request goes alone at once (one task hop later); under load each batch costs one
round trip however many requests it holds. A new socket's reads (core.asyncdb.Lookups) and its
first presence beat (presence.services) go this way, so a connection storm's hundreds of
handshakes in flight share a few statements and script calls instead of making three each; so do
the sockets' sends and reactions (messaging.consumers.send_batches, reaction_batches): a batch of
sends is one statement and one commit, and a reaction waiting for its room's lock holds up no queue
of others.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

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
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self.waiting.append((request, future))
        if self.runner is None:
            self.runner = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        try:
            while self.waiting:
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
