"""PostgreSQL on the event loop, for the hot paths of sockets: message sends, and connecting.

Django's ORM runs in a worker thread: fine for most work, but a busy socket server then pays a
thread hop per query and, worse, the database thread waits for the GIL behind the event loop
after every round trip. The socket's send batches (messaging.services.amessage_send_many) run
on a psycopg AsyncConnection instead: one per server process, opened on first use with the
connection parameters Django itself would use (DATABASE_URL and its OPTIONS, e.g. `sslmode`),
reopened if it breaks, and closed when the loop shuts down. Reads that a new socket needs (its
user, its rooms: accounts.middleware, messaging.selectors.asession_state) use a second connection
of the same kind (`fetchall(..., reads=True)`), so that a connection storm neither waits behind
send batches nor holds them up, and pays no thread hop and no ORM query building per socket; and
the sockets that connect together share each read (`Lookups`: one statement for every session key,
user or room list asked for meanwhile, as send batches share a statement). Reactions that come with
sends ride in the send batch's transaction (messaging.services.awrite_many, through `transaction`);
batches of reactions alone, and the notifications of committed batches
(notifications.services._anotify), use a third (`changes=True`).

The statements on these connections, as those core.sql prepares on Django's, are planned once per
connection (`plan_cache_mode = force_generic_plan`, in the settings' connection options).
PostgreSQL's own choice, once autoanalyze had seen the day's messages (about 30,000 rows), was to
plan the send statement anew at every run (a custom plan): its planning then took half of
PostgreSQL's CPU, and chat latency doubled for good (docs/performance.md, "PostgreSQL planned every
send once the day was analyzed"). Their parameters are keys, JSON batches and dates that partition
pruning handles at run time, so the generic plan is as good for every run.

A batch waits at most settings.DB_STATEMENT_TIMEOUT for PostgreSQL, connecting included: past it
the connection is dropped and the statement fails with core.dbdeadline.StatementTimeout (an
OperationalError: the sends answer `unavailable`, and their retries are idempotent).
"""

import asyncio
import re
import weakref
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from django.conf import settings
from django.db import connections
from psycopg.rows import dict_row

from core import dbdeadline
from core.batches import Batches
from core.loops import per_loop


def connection_params() -> dict[str, Any]:
    """Django's own connection parameters for the default database, for an async connection."""
    params = connections["default"].get_connection_params()
    params.pop("cursor_factory", None)  # a sync cursor class; ours are async
    if "prepare_threshold" not in settings.DATABASES["default"].get("OPTIONS", {}):
        # Django turns prepared statements off (for poolers in transaction mode) unless asked;
        # the send statement runs thousands of times a second: psycopg's default prepares it.
        params.pop("prepare_threshold", None)
    return params


class _Writer:
    def __init__(self) -> None:
        self.connection: psycopg.AsyncConnection[dict[str, Any]] | None = None
        self.lock = asyncio.Lock()  # one statement at a time on the connection
        self.keeper: asyncio.Task | None = None

    async def connect(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        if self.connection is None or self.connection.closed or self.connection.broken:
            params = connection_params()  # plan_cache_mode too (settings): see the module's docstring
            self.connection = await psycopg.AsyncConnection.connect(autocommit=True, row_factory=dict_row, **params)
            if self.keeper is None:
                self.keeper = asyncio.get_running_loop().create_task(self._keep())
        return self.connection

    async def _keep(self) -> None:
        """Lives as long as the loop; closes the connection when the server (or a test) stops."""
        try:
            await asyncio.Event().wait()
        finally:
            if self.connection is not None:
                await self.connection.close()


_T = TypeVar("_T")

_writer = per_loop(_Writer)
_reader = per_loop(_Writer)
_changer = per_loop(_Writer)


async def fetchall(
    statement: str, params: list | dict, *, reads: bool = False, changes: bool = False
) -> list[dict[str, Any]]:
    """Run one statement on this loop's connection (`reads`: its second one, `changes`: its third)
    and return its rows, by column name. The connection is in autocommit: a single statement is its
    own transaction, committed (or, on an error, rolled back whole) before this returns: one round
    trip, no BEGIN or COMMIT of its own.

    A read that fails on a connection kept from earlier (it may have died while idle: PostgreSQL
    restarted, a proxy cut it) is tried once more on a new connection, within the same deadline,
    as the pool's check does for Django's connections; a write is not (its caller answers
    `unavailable` and the client's retry is idempotent)."""

    async def run(connection: psycopg.AsyncConnection[dict[str, Any]]) -> list[dict[str, Any]]:
        async with connection.cursor() as cursor:
            await cursor.execute(statement, params)
            return await cursor.fetchall()

    writer = _reader() if reads else _changer() if changes else _writer()
    return await _on(writer, run, retry=reads)


@dataclass(frozen=True)
class Prepared:
    """A statement that `transaction` runs by name, planned once per connection: PREPAREd on
    first use (its `%(name)s` parameters in the order of `params`), then EXECUTEd."""

    name: str
    statement: str
    params: tuple[str, ...]

    def prepare(self) -> str:
        positions = {name: index for index, name in enumerate(self.params, 1)}
        body = re.sub(r"%\((\w+)\)s", lambda match: f"${positions[match[1]]}", self.statement)
        return f"PREPARE {self.name} AS {body.replace('%%', '%')}"

    def execute(self, cursor: psycopg.AsyncClientCursor[dict[str, Any]], params: dict[str, Any]) -> str:
        placeholders = ", ".join(["%s"] * len(self.params))
        return cursor.mogrify(f"EXECUTE {self.name}({placeholders})", [params[name] for name in self.params])


def may_prepare() -> bool:
    """Whether `Prepared` statements are PREPAREd by name: not where the settings choose a
    prepare_threshold (a pooler in transaction mode, such as PgBouncer, which keeps no track of a
    PREPARE; docs/scaling.md). Then they go inline, planned each time."""
    return "prepare_threshold" not in settings.DATABASES["default"].get("OPTIONS", {})


# The names PREPAREd on each connection (gone with it).
_prepared: weakref.WeakKeyDictionary[psycopg.AsyncConnection[dict[str, Any]], set[str]] = weakref.WeakKeyDictionary()


async def transaction(steps: list[tuple[str | Prepared, Any]], *, changes: bool = False) -> list[list[dict[str, Any]]]:
    """Run several statements as one transaction (`changes`: on the third connection) in one
    round trip: their parameters bound here, they go as one query string, which PostgreSQL runs as
    one transaction (any error rolls all of it back, and is raised) with a snapshot per statement
    (READ COMMITTED: each sees what the ones before it did). Returns each statement's rows.

    Not psycopg's pipeline: it sends each statement on a turn of the event loop of its own, and
    a lock taken by the first would be held across those turns of a busy loop. A big statement
    repeated in such batches is `Prepared`, so that it is not planned each time."""

    async def run(connection: psycopg.AsyncConnection[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        prepared = _prepared.setdefault(connection, set())
        try:
            return await _transaction(connection, steps, prepared)
        except psycopg.errors.InvalidSqlStatementName:
            # The server forgot them (a pooler's DISCARD ALL, psycopg's own DEALLOCATE ALL): the
            # query rolled back whole, so it goes again once, prepared anew.
            prepared.clear()
            return await _transaction(connection, steps, prepared)

    return await _on(_changer() if changes else _writer(), run, retry=False)


async def _transaction(
    connection: psycopg.AsyncConnection[dict[str, Any]], steps: list[tuple[str | Prepared, Any]], prepared: set[str]
) -> list[list[dict[str, Any]]]:
    by_name = may_prepare()
    async with psycopg.AsyncClientCursor(connection) as cursor:
        texts = []
        for statement, params in steps:
            if not isinstance(statement, Prepared):
                texts.append(cursor.mogrify(statement, params))
            elif not by_name:
                texts.append(cursor.mogrify(statement.statement, params))
            else:
                if statement.name not in prepared:
                    try:
                        await cursor.execute(statement.prepare())
                    except psycopg.errors.DuplicatePreparedStatement:
                        pass  # prepared on this session already (forgotten here, not there)
                    prepared.add(statement.name)
                texts.append(statement.execute(cursor, params))
        await cursor.execute(";\n".join(texts))
        results = []
        while True:
            results.append(await cursor.fetchall() if cursor.description is not None else [])
            if not cursor.nextset():
                return results


async def _on(
    writer: _Writer, run: Callable[[psycopg.AsyncConnection[dict[str, Any]]], Awaitable[_T]], *, retry: bool
) -> _T:
    """`run` on the writer's connection, alone on it, within settings.DB_STATEMENT_TIMEOUT (connecting
    included); `retry`: once more on a new connection if a kept one turns out dead."""
    async with writer.lock:
        timeout = settings.DB_STATEMENT_TIMEOUT
        deadline = asyncio.get_running_loop().time() + timeout
        for attempt in range(2 if retry else 1):
            kept = writer.connection is not None and not writer.connection.closed and not writer.connection.broken
            try:
                async with asyncio.timeout_at(deadline):
                    connection = await writer.connect()
            except TimeoutError:
                raise dbdeadline.StatementTimeout(f"no connection to PostgreSQL within {timeout} s") from None
            with dbdeadline.cut_at(connection, deadline) as cut:
                try:
                    return await run(connection)
                except psycopg.OperationalError as error:
                    if cut():
                        raise dbdeadline.StatementTimeout(f"PostgreSQL did not answer within {timeout} s") from error
                    if not (retry and kept and attempt == 0):
                        raise
                    await connection.close()  # the next attempt connects anew
        raise AssertionError("unreachable")


class Lookups(Batches[Hashable, list[dict[str, Any]]]):
    """One kind of read by key (a session, a user, a user's rooms) that many callers need at once,
    as one statement for all the keys of a batch (core.batches) on the reads connection:
    `statement` takes the keys as its one parameter, an array, and returns rows with the key in
    column `key`. `get(key)` gives the rows of that key (none: an empty list), or the read's error.
    In a connection storm each socket's three reads become a share of three statements instead of
    three round trips of its own (docs/performance.md, "connecting in batches")."""

    def __init__(self, statement: str, key: str) -> None:
        super().__init__(self._read)
        self.statement, self.key = statement, key

    async def get(self, key: Hashable) -> list[dict[str, Any]]:
        return await self.submit(key)

    async def _read(self, keys: list[Hashable]) -> list[list[dict[str, Any]]]:
        by_key: dict[Hashable, list[dict[str, Any]]] = {key: [] for key in keys}
        for row in await fetchall(self.statement, [list(by_key)], reads=True):
            by_key[row[self.key]].append(row)
        return [by_key[key] for key in keys]
