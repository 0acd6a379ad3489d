"""The event loop's PostgreSQL connection (core.asyncdb) is opened as Django opens its own:
DATABASE_URL's OPTIONS (sslmode, application_name, ...) reach it."""

import uuid

import psycopg
import pytest
from channels.db import database_sync_to_async
from django.db import connection, connections

from core import asyncdb
from messaging.services import amessage_send_many, awrite_many, message_send
from rooms.services import room_create


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_options_of_database_url_reach_the_connection(monkeypatch):
    options = dict(connections["default"].settings_dict["OPTIONS"])
    options |= {"application_name": "parley-asyncdb-test", "sslmode": "disable"}
    monkeypatch.setitem(connections["default"].settings_dict, "OPTIONS", options)

    params = asyncdb.connection_params()
    (row,) = await asyncdb.fetchall("SELECT current_setting('application_name') AS name", [])

    assert params["sslmode"] == "disable" and "pool" not in params
    assert row == {"name": "parley-asyncdb-test"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_option_the_server_refuses_fails_the_connection(monkeypatch):
    """Options are not dropped on the way: one the connection cannot honour fails it."""
    options = dict(connections["default"].settings_dict["OPTIONS"]) | {"sslmode": "require"}
    monkeypatch.setitem(connections["default"].settings_dict, "OPTIONS", options)

    with pytest.raises(psycopg.OperationalError, match="(?i)ssl"):
        await asyncdb.fetchall("SELECT 1 AS one", [])


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_read_survives_a_connection_that_died_while_idle_and_a_write_does_not_retry():
    """PostgreSQL restarted, or a proxy cut the idle connection: a new socket's reads (reads=True)
    try once more on a new connection; a statement on the writer answers the error (its client's
    retry is idempotent)."""

    async def backend(reads: bool) -> int:
        (row,) = await asyncdb.fetchall("SELECT pg_backend_pid() AS pid", [], reads=reads)
        return row["pid"]

    async def cut(pid: int) -> None:  # waits until that backend is gone
        await asyncdb.fetchall("SELECT pg_terminate_backend(%s, 10000) AS done", [pid], reads=False)

    reader = await backend(reads=True)
    await cut(reader)
    assert await backend(reads=True) != reader  # read again, on a new connection

    writer = await backend(reads=False)
    await asyncdb.fetchall("SELECT pg_terminate_backend(%s, 10000) AS done", [writer], reads=True)
    with pytest.raises(psycopg.OperationalError):
        await backend(reads=False)
    assert await backend(reads=False) != writer  # the next statement connects anew


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_transaction_runs_its_statements_in_one_query_all_or_nothing_and_prepares_once_per_connection():
    """core.asyncdb.transaction: one query string, one transaction (an error in any statement keeps
    nothing), a snapshot per statement (each sees the ones before it), and a `Prepared` statement
    PREPAREd once per connection, again on a new one."""
    await database_sync_to_async(run_ddl)("CREATE TABLE asyncdb_t (n int)")
    count = "SELECT count(*) AS n FROM asyncdb_t"
    insert = asyncdb.Prepared("asyncdb_test_insert", "INSERT INTO asyncdb_t VALUES (%(n)s::int) RETURNING n", ("n",))

    async def prepared_here() -> list[str]:
        rows = await asyncdb.fetchall("SELECT name FROM pg_prepared_statements", [], changes=True)
        return [row["name"] for row in rows]

    rows = await asyncdb.transaction([(insert, {"n": 1}), (insert, {"n": 2}), (count, [])], changes=True)
    assert rows == [[{"n": 1}], [{"n": 2}], [{"n": 2}]]
    assert "asyncdb_test_insert" in await prepared_here()
    # Forgotten by the server (a pooler's DISCARD ALL, say): prepared again. A statement without
    # rows gives none. Forgotten here but not there: the PREPARE's "already exists" is no error.
    assert await asyncdb.transaction([("DEALLOCATE ALL", [])], changes=True) == [[]]
    assert await asyncdb.transaction([(insert, {"n": 5}), (count, [])], changes=True) == [[{"n": 5}], [{"n": 3}]]
    asyncdb._prepared.clear()
    assert await asyncdb.transaction([(count, []), (insert, {"n": 6})], changes=True) == [[{"n": 3}], [{"n": 6}]]
    await asyncdb.fetchall("DELETE FROM asyncdb_t WHERE n > 2 RETURNING n", [])

    with pytest.raises(psycopg.errors.DivisionByZero):
        await asyncdb.transaction([(insert, {"n": 3}), ("SELECT 1 / %s AS x", [0])], changes=True)
    assert await asyncdb.fetchall(count, []) == [{"n": 2}]  # the 3 was rolled back with it

    (row,) = await asyncdb.fetchall("SELECT pg_backend_pid() AS pid", [], changes=True)
    await asyncdb.fetchall("SELECT pg_terminate_backend(%s, 10000) AS done", [row["pid"]], reads=True)
    with pytest.raises(psycopg.OperationalError):
        await asyncdb.fetchall("SELECT 1 AS one", [], changes=True)
    assert await asyncdb.transaction([(insert, {"n": 4})], changes=True) == [[{"n": 4}]]  # prepared anew
    await database_sync_to_async(run_ddl)("DROP TABLE asyncdb_t")


def run_ddl(statement: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement)


@pytest.mark.django_db
def test_a_send_over_rest_is_planned_once_per_connection_too(make_user):
    """Django's connections (a REST send: messaging.services.message_send through core.sql) run
    the send statement on a generic plan too: without it every REST send was planned anew once the
    day's messages were analyzed, as the sockets' were."""
    ada = make_user()
    room = room_create(creator=ada, name="Plans over REST")

    def plans() -> dict[str, tuple[int, int]]:
        """The send statement's plans on this test's connection, by statement name. The connection
        is a pooled one: an earlier test may have run the statement there already, and one whose
        preparing run failed may have left a copy that psycopg no longer uses (psycopg forgets a
        statement whose first, preparing run fails, without deallocating it, and prepares it again)."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
                ["%jsonb_to_recordset%AS v(idx int%"],
            )
            return {name: (generic, custom) for name, generic, custom in cursor.fetchall()}

    before = plans()
    for n in range(8):  # core.sql prepares it on its first run
        message_send(user=ada, room_id=room.pk, content=f"m{n}", client_msg_id=uuid.uuid4())
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone() == ("force_generic_plan",)
    after = plans()
    runs = {name: after[name][0] - before.get(name, (0, 0))[0] for name in after}
    assert sorted(runs.values())[-1] == 8 and sum(runs.values()) == 8  # eight runs of one statement
    assert all(custom == 0 for _, custom in after.values())  # each on the generic plan


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_behind_a_pooler_a_prepared_statement_goes_inline(monkeypatch):
    """Settings that choose a prepare_threshold (PgBouncer in transaction mode, which does not follow
    a PREPARE): `Prepared` statements run inline, and nothing is PREPAREd by name."""
    options = dict(connections["default"].settings_dict["OPTIONS"]) | {"prepare_threshold": None}
    monkeypatch.setitem(connections["default"].settings_dict, "OPTIONS", options)
    twice = asyncdb.Prepared("asyncdb_test_twice", "SELECT %(n)s::int * 2 AS n", ("n",))

    assert await asyncdb.transaction([(twice, {"n": 21}), ("SELECT %s::int AS n", [1])]) == [[{"n": 42}], [{"n": 1}]]
    assert await asyncdb.fetchall("SELECT name FROM pg_prepared_statements WHERE from_sql", []) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_hot_statements_are_planned_once_per_connection(make_user):
    """The send statement runs on a generic plan from its first prepared run, never on a plan made
    for one run (PostgreSQL's own choice once the day's messages were analyzed: planning at every
    send took half its CPU; docs/performance.md, "PostgreSQL planned every send")."""
    ada = await database_sync_to_async(make_user)()
    room = await database_sync_to_async(room_create)(creator=ada, name="Plans")
    for n in range(12):  # psycopg prepares a statement on its sixth run
        request = {"user": ada, "room_id": room.pk, "content": f"m{n}", "client_msg_id": uuid.uuid4()}
        await amessage_send_many(requests=[request])
    (plans,) = await asyncdb.fetchall(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
        ["%jsonb_to_recordset%AS v(idx int%"],
    )
    assert plans["generic_plans"] >= 6 and plans["custom_plans"] == 0
    for where in ({}, {"reads": True}, {"changes": True}):
        (row,) = await asyncdb.fetchall("SHOW plan_cache_mode", [], **where)
        assert row == {"plan_cache_mode": "force_generic_plan"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_batch_of_sends_and_reactions_runs_each_statement_by_name(make_user):
    """The transaction a reaction rides in with sends (messaging.services.awrite_many) takes the
    rooms' locks, sends and reacts with statements PREPAREd once per connection: none of the three
    is planned again at every batch (docs/performance.md, "A reaction's batch")."""
    ada = await database_sync_to_async(make_user)()
    room = await database_sync_to_async(room_create)(creator=ada, name="Named")
    (first,) = await amessage_send_many(
        requests=[{"user": ada, "room_id": room.pk, "content": "first", "client_msg_id": uuid.uuid4()}]
    )
    for emoji in ("👍", "🎉"):
        send = {"user": ada, "room_id": room.pk, "content": emoji, "client_msg_id": uuid.uuid4()}
        reaction = {"user": ada, "room_id": room.pk, "message_id": first[0].id, "emoji": emoji, "present": True}
        (sent,), (reacted,) = await awrite_many(sends=[send], reactions=[reaction])
        assert sent[1] is True and any(r["emoji"] == emoji for r in reacted.reactions)
    statement = "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements WHERE from_sql"
    by_name = {row["name"]: row for row in await asyncdb.fetchall(statement, [])}
    for name in ("parley_lock_rooms", "parley_send", "parley_react"):
        assert by_name[name]["custom_plans"] == 0 and by_name[name]["generic_plans"] >= 1, by_name
