"""Our own big statements on Django's connection (and its transaction): parameters sent apart from
the text, and plans kept.

Django's cursors bind parameters client-side, quoting every value (every array element) into the
SQL text, and its psycopg connections never prepare statements (prepare_threshold None, for
poolers in transaction mode; psycopg then ignores `prepare=True` too). For the few large
statements that run many times a second (the batched sends and reactions, notifications'
recipients, inbox rows and unread counts, search), that means parsing and planning each one every
time: 3.3 ms of PostgreSQL's CPU per call for notifications' recipients alone, against 0.3 ms to
run it (EXPLAIN ANALYZE; docs/performance.md).

The functions here send parameters as parameters and prepare each statement on its connection
(the pool keeps connections, and so their prepared statements; each is planned once,
`plan_cache_mode` in the settings), unless the database settings say this connection must not
prepare (OPTIONS `prepare_threshold`, as for core.asyncdb: e.g. PgBouncer in transaction mode).
To prepare, the connection's prepare_threshold goes from None to a count never reached: only what
is asked for is prepared (Django's own cursors bind client-side and never prepare).

Until 2026-12-04 this module asked for `prepare=True` on connections whose None made psycopg
ignore it, so nothing here was prepared: the parameters went apart from the text, and every
statement was planned at every call (docs/performance.md, "Nothing on Django's connections was
prepared"; tests/test_asyncdb.py now checks the plans on Django's connection).
"""

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from psycopg.rows import dict_row

Params = Sequence[Any] | Mapping[str, Any]


# A prepare_threshold no statement reaches by count: only `prepare=True` prepares.
_ONLY_WHEN_ASKED = 2**31


def _may_prepare() -> bool | None:
    """True (prepare at once), or None (psycopg's own rule, off on Django's connections) where the
    settings choose a prepare_threshold."""
    return None if "prepare_threshold" in settings.DATABASES["default"].get("OPTIONS", {}) else True


def _cursor() -> psycopg.Cursor[dict[str, Any]]:
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None and _may_prepare():
        raw.prepare_threshold = _ONLY_WHEN_ASKED
    return psycopg.Cursor(raw, row_factory=dict_row)


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
