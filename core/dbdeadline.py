"""Deadlines on PostgreSQL's answers: a database that accepts connections but never answers (a
hung server, a network that drops packets) must not hold a request or a send for ever.

libpq has no client-side timeout for a statement: one sent on a connection whose server went
silent waits until TCP gives up, which is minutes or never (the server's `statement_timeout`
needs a server that runs). So Parley keeps its own: when a wait for PostgreSQL's answer passes
its deadline, the connection's socket is shut down. psycopg then fails the operation with
OperationalError (StatementTimeout here) and marks the connection broken: the pool discards it
(and connects anew), core.asyncdb reconnects, and callers answer `unavailable`
(core.errors.is_outage). What was sent may still commit (the server may yet run it): sends are
idempotent by `client_msg_id`, so the client's retry finds the stored message.

Where deadlines apply (settings.DB_STATEMENT_TIMEOUT; connecting is bounded by `connect_timeout`,
DB_CONNECT_TIMEOUT):

- requests (REST, pages), through `DeadlineMiddleware`, and the socket's calls of sync services
  (core.events.call_service), through `budget()`: each wait on a pooled connection
  (`DeadlineConnection`: a statement, a commit, the pool's health check) at most
  DB_STATEMENT_TIMEOUT; once one has passed it, PostgreSQL is taken for unreachable for the rest
  of that request and further waits fail at once (the pool's health check would otherwise try
  every idle connection in turn, DB_STATEMENT_TIMEOUT each);
- the socket's sends (core.asyncdb): connecting and the statement together, per batch.

Elsewhere (Celery tasks, management commands) nothing is bounded: archival statements may run for
minutes. With the pool off (DB_POOL_MAX_SIZE=0) only connecting is bounded.
"""

import asyncio
import contextlib
import itertools
import logging
import math
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import psycopg
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings

if TYPE_CHECKING:  # config/settings.py imports this module (the pool's connection class)
    from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

# A socket whose answer has begun to arrive when its deadline passes gets this much longer: the
# waiter (perhaps a starved thread or loop) is about to read it.
GRACE_SECONDS = 0.05


class StatementTimeout(psycopg.errors.ConnectionTimeout):
    """PostgreSQL did not answer within the deadline; the connection was dropped."""


def _readable(fd: int) -> bool:
    poller = select.poll()  # not select.select: a busy server's descriptors go past FD_SETSIZE
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _shut_down(fd: int) -> None:
    """End the connection on `fd` in both directions: whoever waits on it wakes up to an error."""
    try:
        with socket.socket(fileno=fd) as sock:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            finally:
                sock.detach()  # the descriptor stays psycopg's to close
    except OSError:  # already closed or never connected: nothing waits on it
        logger.debug("could not shut down descriptor %s", fd, exc_info=True)


class _Budget:
    """One request's (or service call's) deadlines: `timeout` per wait; `stalled` once one passed."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.stalled = False


_budget: ContextVar[_Budget | None] = ContextVar("parley_db_budget", default=None)


@contextlib.contextmanager
def budget(timeout: float | None = None) -> Iterator[None]:
    """Bound each wait on a pooled connection inside the block (see the module)."""
    token = _budget.set(_Budget(settings.DB_STATEMENT_TIMEOUT if timeout is None else timeout))
    try:
        yield
    finally:
        _budget.reset(token)


class _Watchdog:
    """One thread per process that shuts down the sockets of waits past their deadline.

    It sleeps until the earliest deadline it knows of (`wake_at`), and is woken only for a wait
    due before that: statements one after the other, each due DB_STATEMENT_TIMEOUT after it
    starts, wake it about once per DB_STATEMENT_TIMEOUT rather than once each (a thread woken
    takes the GIL from the event loop; docs/performance.md)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A fresh state: at start, and in a forked child, which has none of its parent's threads."""
        self.condition = threading.Condition()
        self.waits: dict[int, tuple[float, int]] = {}  # token: (deadline, descriptor)
        self.tokens = itertools.count()
        self.thread: threading.Thread | None = None
        self.wake_at = math.inf  # when the thread looks next (inf: once woken)

    def watch(self, fd: int, deadline: float) -> int:
        with self.condition:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="parley-db-deadlines", daemon=True)
                self.thread.start()
            token = next(self.tokens)
            self.waits[token] = (deadline, fd)
            if deadline < self.wake_at:
                self.wake_at = deadline
                self.condition.notify()
            return token

    def unwatch(self, token: int) -> bool:
        """Stop watching; True if the deadline passed and the socket was shut down."""
        with self.condition:
            return self.waits.pop(token, None) is None

    def _run(self) -> None:
        with self.condition:
            while True:
                now = time.monotonic()
                for token, (deadline, fd) in list(self.waits.items()):
                    if deadline > now:
                        continue
                    if _readable(fd):
                        self.waits[token] = (now + GRACE_SECONDS, fd)
                    else:
                        del self.waits[token]  # under the lock: its waiter cannot close it meanwhile
                        _shut_down(fd)
                earliest = min((d for d, _ in self.waits.values()), default=None)
                self.wake_at = math.inf if earliest is None else earliest
                self.condition.wait(None if earliest is None else max(0.0, earliest - now))


_watchdog = _Watchdog()
# A forked child has none of its parent's threads: it starts a watchdog of its own when it needs one.
os.register_at_fork(after_in_child=_watchdog.reset)


class DeadlineConnection(psycopg.Connection):
    """The pool's connections (config/settings.py): inside a `budget()`, every wait for the
    server's answer has a deadline."""

    def wait(self, gen: Any, interval: Any = None) -> Any:
        current = _budget.get()
        if current is None:
            return super().wait(gen) if interval is None else super().wait(gen, interval)
        if current.stalled:  # PostgreSQL did not answer this request before: it will not now
            _shut_down(self.pgconn.socket)
            try:
                return super().wait(gen)  # fails: the socket is shut down
            except psycopg.OperationalError as error:
                raise StatementTimeout("PostgreSQL did not answer earlier in this request") from error
        timeout = current.timeout
        token = _watchdog.watch(self.pgconn.socket, time.monotonic() + timeout)
        try:
            return super().wait(gen) if interval is None else super().wait(gen, interval)
        except psycopg.OperationalError as error:
            if _watchdog.unwatch(token):
                current.stalled = True
                raise StatementTimeout(f"PostgreSQL did not answer within {timeout} s") from error
            raise
        finally:
            _watchdog.unwatch(token)


@contextlib.contextmanager
def cut_at(connection: "psycopg.AsyncConnection[Any]", deadline: float) -> Iterator[Callable[[], bool]]:
    """For async code: shut `connection` down if the block is still waiting for it at `deadline`
    (the loop's clock). Yields a function that tells whether it was. Not a cancellation: psycopg
    answers a cancelled wait by asking the server to cancel the query and waiting again for its
    answer, which never comes from a server that hangs."""
    loop = asyncio.get_running_loop()
    fd = connection.pgconn.socket
    fired = False
    handle: asyncio.TimerHandle

    def expire() -> None:
        nonlocal fired, handle
        if _readable(fd):
            handle = loop.call_later(GRACE_SECONDS, expire)
            return
        fired = True
        _shut_down(fd)

    handle = loop.call_at(deadline, expire)
    try:
        yield lambda: fired
    finally:
        handle.cancel()


class DeadlineMiddleware:
    """Each request gets its `budget()` (first in MIDDLEWARE)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: "HttpRequest") -> Any:
        if self.async_mode:
            return self._acall(request)
        with budget():
            return self.get_response(request)

    async def _acall(self, request: "HttpRequest") -> "HttpResponse":
        with budget():
            return await self.get_response(request)
