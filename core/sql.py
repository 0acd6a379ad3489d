"""Our own big statements on Django's connection (and its transaction): parameters sent apart from
the text, and plans kept.

Django's cursors bind parameters client-side, quoting every value (every array element) into the
SQL text, and its psycopg connections never prepare statements (prepare_threshold None, for
poolers in transaction mode). For the few large statements that run many times a second (the
batched sends and reactions, notifications' recipients, inbox rows and unread counts), that meant
parsing and planning each one every time: 3.3 ms of PostgreSQL's CPU per call for notifications'
recipients alone, against 0.3 ms to run it (EXPLAIN ANALYZE; docs/performance.md). The functions
here send parameters as parameters and prepare each statement on its connection (the pool keeps
connections, and so their prepared statements), unless the database settings say this connection
must not prepare (OPTIONS `prepare_threshold`, as for core.asyncdb: e.g. PgBouncer in transaction
mode).
"""

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from psycopg.rows import dict_row

Params = Sequence[Any] | Mapping[str, Any]


def _may_prepare() -> bool | None:
    """True (prepare at once), or None (psycopg's own rule, off on Django's connections) where the
    settings choose a prepare_threshold."""
    return None if "prepare_threshold" in settings.DATABASES["default"].get("OPTIONS", {}) else True


def _cursor() -> psycopg.Cursor[dict[str, Any]]:
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection, row_factory=dict_row)


def fetchall(statement: str, params: Params) -> list[dict[str, Any]]:
    """Run `statement` on Django's connection (in its transaction, if one is open), prepared, with
    server-side parameters; its rows by column name, as core.asyncdb.fetchall gives them."""
    with _cursor() as cursor:
        cursor.execute(statement, params, prepare=_may_prepare())
        return cursor.fetchall()


def execute(statement: str, params: Params) -> None:
    """`fetchall` for a statement that returns no rows."""
    with _cursor() as cursor:
        cursor.execute(statement, params, prepare=_may_prepare())
