"""Threads kept for requests, and for the sockets' database work.

Django's ASGI handler runs a request's sync code (the sync receivers of `request_started` and
`request_finished`, sync middleware steps and views, `response.close()`) on a thread of the
request's own: its asgiref `ThreadSensitiveContext` makes a `ThreadPoolExecutor(max_workers=1)`
per request, whose thread starts on the first sync call, and at the end joins it from yet another
new thread. Every request, an async view's included, started two threads, and starting one blocks
the event loop until the new thread runs: on the ticket path (`POST /api/v1/auth/ws-ticket/`, then
the socket) a profile put a quarter of a worker's time in those threads (docs/performance.md,
"Request threads kept between requests").

`serve(app)` wraps Django's handler: each request enters asgiref's documented
`ThreadSensitiveContext(executor=...)` with a `Lease` of ours, and Django's own context inside it
then does nothing. On the request's first sync call, the lease borrows a thread from this
process's pool; it gives it back when the request ends. A thread serves one request at a time, as
a WSGI server's threads do, and what Django keeps per thread is handled as there: the database
connections go back to the pool (or are closed past DB_CONN_MAX_AGE) at `request_finished`, on that
thread, before the thread is given back. The pool has REQUEST_THREADS (a setting) threads at most,
as a WSGI server has: a request that finds all of them lent waits for one without blocking the
event loop, its sync call queued in order of arrival (a request cancelled meanwhile leaves the
queue). One that waited OVERFLOW_AFTER_SECONDS gets a thread of its own beyond the bound, ended
once given back, so that requests holding their threads for long cannot hold the others back.

A request that runs no sync code of its own borrows no thread at all (an async view such as the
socket ticket's, `POST /api/v1/auth/ws-ticket/`, asked at every reconnect). Django's handler makes
two sync calls around every request, each a hop to a thread and back: request_started's receivers,
and the response's close() with request_finished's. Both only tidy the thread's own database
connections (and Django's caches and URL conf, whose close is a no-op here):

- request_started's two receivers (`reset_queries`, `close_old_connections`) are disconnected once,
  by serve(); a lease runs them on its thread when it borrows one, before the request's first
  sync call there: the thread Django ran them on, before anything of the request ran there.
  (Django's test client connects `close_old_connections` again after each of its requests; in a
  test process it may then also run through the signal, a hop more, which does no harm.)
- The response's close() after the last byte of the answer went out, from a request that never
  borrowed a thread, runs there and then, on the event loop: request_finished's receivers find no
  database connection of that thread to tidy. tests/test_threads.py checks that they are still
  Django's own three, so that a receiver added later is looked at before it runs on the loop.

`hand_back()` gives the request's thread back early: a long-poll or an event stream about to wait
for minutes holds no thread (transports.api). A later sync call of that request borrows one
again, as Django's handler would have started a fresh one.

`database_sync_to_async(fn)` is Channels' (the thread's database connections closed, or given back
to Django's pool, around each call) on DATABASE_THREADS threads of this process's own. Channels'
runs thread-sensitive, and a socket has no thread-sensitive context: every socket of the process
queued its reads and service calls on asgiref's one thread, so one slow history page held up every
other socket's sync (tests/test_threads.py; docs/performance.md, "Reconnect storms: where a
browser's return goes"). Each call is a whole unit of work (a selector, or a service with its own
transaction), so any thread may run it.
"""

import asyncio
import collections
import contextvars
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import AsyncToSync, ThreadSensitiveContext, sync_to_async
from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.core.signals import request_started
from django.db import close_old_connections, connections, reset_queries

# Threads for the sockets' database work, per process; each borrows a connection from Django's pool
# (DB_POOL_MAX_SIZE, 16) for the length of a call, and a quarter of the pool is theirs at most.
DATABASE_THREADS = 4
# Request threads per process (settings.REQUEST_THREADS, 4), all kept once started; a request wanting
# one while all are lent waits for one on the event loop, in order. Each thread running Python takes
# the GIL from the event loop, which every socket of the process waits on: 64 sync requests at a time
# on 64 threads made the loop wake 120-150 ms late at p99, on 8 threads 13-18 ms, on 4 about 7 ms,
# with as many requests answered a second; beside bursts of REST requests the chat's p99 fell from
# about 450 ms to 130 ms with 8 threads and 55 ms with 4 (docs/performance.md, "Sync requests on 4
# threads"). A WSGI server's threads bound a process the same way. With DATABASE_THREADS, this stays
# below Django's database pool (DB_POOL_MAX_SIZE, 16), so a burst of requests queues here rather
# than time out waiting for a connection.
# A request that has waited this long for one of them is given a thread of its own, beyond the
# bound, ended when given back: requests that hold their threads for long (PostgreSQL frozen, each
# statement waiting DB_STATEMENT_TIMEOUT) must not hold every other request back for longer. Bursts
# of 64 rooms lists a second beside the chat were served within 1.1 s at most on the 2-core box
# (docs/performance.md), so they seldom reach it.
OVERFLOW_AFTER_SECONDS = 2.0


class Pool:
    """The process's request threads (each a single-thread executor): `most` lent at a time, but
    for requests that waited `overflow_after` seconds for one. Used from the event loop's thread
    only, as asgiref submits to a context's executor from there."""

    def __init__(self, most: int | None = None, overflow_after: float = OVERFLOW_AFTER_SECONDS) -> None:
        self.most = most if most is not None else settings.REQUEST_THREADS
        self.overflow_after = overflow_after
        self.idle: list[ThreadPoolExecutor] = []
        self.lent = 0  # threads borrowed and not given back (tests, and a gauge if one is wanted)
        self.waiting: collections.deque[Lease] = collections.deque()  # for a thread, in order

    def borrow(self) -> ThreadPoolExecutor | None:
        """An idle thread, or a new one; None when `most` are lent already."""
        if self.lent >= self.most:
            return None
        return self.overflow()

    def overflow(self) -> ThreadPoolExecutor:
        """A thread even past `most` (a request that waited too long)."""
        self.lent += 1
        return self.idle.pop() if self.idle else ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def wait(self, lease: "Lease") -> None:
        """`lease` found every thread lent: it gets the next one given back (`lend`), in order."""
        self.waiting.append(lease)

    def give_back(self, thread: ThreadPoolExecutor, *, busy: bool) -> None:
        """A thread still running a call (its request was cancelled meanwhile: asgiref lets the
        call finish) ends once it is done, rather than make the next request wait behind it; so
        does one past `most`."""
        self.lent -= 1
        if busy or self.lent + len(self.idle) >= self.most:
            thread.shutdown(wait=False)
        else:
            self.idle.append(thread)
        while self.waiting and self.lent < self.most:
            self.waiting.popleft().lend(self.borrow())


pool = Pool()


def _first(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """A request's first sync call on its thread, after what Django's request_started receivers did."""
    reset_queries()
    close_old_connections()
    return fn(*args, **kwargs)


class Lease(Executor):
    """One request's executor: the same borrowed thread for each of its sync calls, as Django's
    own context gives, until the request ends or `hand_back()`. `answered` is set once the
    response's last body message went out."""

    def __init__(self, source: Pool) -> None:
        self.source = source
        self.thread: ThreadPoolExecutor | None = None
        self.calls: list[Future] = []
        self.pending: list[tuple[Future, Any, tuple, dict]] = []  # while waiting for a thread
        self.fresh = False  # the thread was just borrowed: tidy it first (_first)
        self.answered = False
        self.patience: asyncio.TimerHandle | None = None  # while waiting: when to overflow

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        if self.thread is None and self.answered:
            return _run_here(fn, *args, **kwargs)  # the response's close(): see the module's docstring
        if self.thread is None and not self.pending:
            self.thread, self.fresh = self.source.borrow(), True
            if self.thread is None:
                self.source.wait(self)
                self.patience = asyncio.get_running_loop().call_later(self.source.overflow_after, self._overflow)
        if self.thread is None:  # every thread is lent: the call runs once one comes back (lend)
            future: Future = Future()
            self.pending.append((future, fn, args, kwargs))
            return future
        return self._run(fn, *args, **kwargs)

    def _run(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        assert self.thread is not None
        if self.fresh:
            fn, args, self.fresh = _first, (fn, *args), False
        future = self.thread.submit(fn, *args, **kwargs)
        self.calls = [call for call in self.calls if not call.done()]
        self.calls.append(future)
        return future

    def _overflow(self) -> None:
        self.source.waiting.remove(self)
        self.lend(self.source.overflow())

    def lend(self, thread: ThreadPoolExecutor | None) -> None:
        """The thread this lease waited for: its calls run there, the first after what request_started did."""
        assert thread is not None
        self._stop_waiting()
        self.thread, pending, self.pending = thread, self.pending, []
        for future, fn, args, kwargs in pending:
            if future.set_running_or_notify_cancel():  # else its request stopped waiting (cancelled)
                _chain(self._run(fn, *args, **kwargs), future)

    def release(self) -> None:
        thread, self.thread = self.thread, None
        if thread is not None:
            self.source.give_back(thread, busy=not all(call.done() for call in self.calls))
        elif self.pending:
            self.source.waiting.remove(self)
            for future, *_ in self.pending:
                future.cancel()
        self._stop_waiting()
        self.calls, self.pending = [], []

    def _stop_waiting(self) -> None:
        if self.patience is not None:
            self.patience.cancel()
            self.patience = None

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.release()


def _chain(inner: Future, outer: Future) -> None:
    """`outer` (running) settles as `inner` does."""

    def settle(done: Future) -> None:
        error = done.exception()
        if error is None:
            outer.set_result(done.result())
        else:
            outer.set_exception(error)

    inner.add_done_callback(settle)


_lease: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("request_thread_lease", default=None)


def serve(app: Any, source: Pool | None = None) -> Any:
    """Django's ASGI handler (`app`), its requests' sync code on the threads of `source` (this
    process's pool unless given)."""
    threads = source if source is not None else pool

    # Run by each lease when it borrows a thread instead (the module's docstring).
    request_started.disconnect(reset_queries)
    request_started.disconnect(close_old_connections)

    async def application(scope: dict, receive: Any, send: Any) -> None:
        lease = Lease(threads)

        async def answer(message: dict) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                lease.answered = True

        token = _lease.set(lease)
        try:
            async with ThreadSensitiveContext(executor=lease):
                await app(scope, receive, answer)
        finally:
            _lease.reset(token)
            lease.release()

    return application


def _run_here(fn: Any, /, *args: Any, **kwargs: Any) -> Future:
    future: Future = Future()
    try:
        future.set_result(fn(*args, **kwargs))
    except BaseException as error:  # as a thread would hand it over
        future.set_exception(error)
    return future


async def hand_back() -> None:
    """Give this request's thread back before a long wait; its database connections go back to
    Django's pool first, on that thread (they are the thread's own)."""
    lease = _lease.get()
    if lease is None or lease.thread is None:
        return
    if getattr(AsyncToSync.executors, "current", None) is not None:
        return  # under a sync step that waits for us on that very thread: nothing to give back
    await sync_to_async(connections.close_all)()
    lease.release()


_database_threads = ThreadPoolExecutor(DATABASE_THREADS, thread_name_prefix="database")


def database_sync_to_async(fn: Any) -> Any:
    """Channels' `database_sync_to_async`, on this process's database threads (the module's
    docstring says why)."""
    return DatabaseSyncToAsync(fn, thread_sensitive=False, executor=_database_threads)
