"""Our own big statements on Django's connection (and its transaction): parameters sent apart from
the text, and plans kept.

Django's cursors bind parameters client-side, quoting every value (every array element) into the
SQL text, and its psycopg connections never prepare statements (prepare_threshold None, for
poolers in transaction mode). For the few large statements that run many times a second (the
batched sends and reactions, notifications' recipients, inbox rows and unread counts), that meant
parsing and planning each one every time: 3.3 ms of PostgreSQL's CPU per call for notifications'
recipients alone, against 0.3 ms to run it (EXPLAIN ANALYZE; docs/performance.md). A `cursor()`
here sends parameters as parameters and prepares each statement on its connection (the pool keeps
connections, and so their prepared statements), unless the database settings say this connection
must not prepare (OPTIONS `prepare_threshold`, as for core.asyncdb: e.g. PgBouncer in transaction
mode).
"""

from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from psycopg.rows import dict_row


def _may_prepare() -> bool | None:
    """True (prepare at once), or None (psycopg's own rule, off on Django's connections) where the
    settings choose a prepare_threshold."""
    return None if "prepare_threshold" in settings.DATABASES["default"].get("OPTIONS", {}) else True


class _Cursor(psycopg.Cursor):
    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None):
        return super().execute(query, params, prepare=_may_prepare() if prepare is None else prepare, binary=binary)


def cursor(*, by_name: bool = False) -> psycopg.Cursor:
    """A cursor on Django's connection for statements with server-side parameters, prepared; rows
    as tuples, or `by_name` as dicts (like core.asyncdb's)."""
    connection.ensure_connection()
    if by_name:
        return _Cursor(connection.connection, row_factory=dict_row)
    return _Cursor(connection.connection)
