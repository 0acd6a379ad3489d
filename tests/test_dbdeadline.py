"""Deadlines on PostgreSQL's answers (core.dbdeadline): a PostgreSQL that accepts connections but
never answers (here: the fault suite's proxy, frozen) fails a request's statement, the pool's
health check and the socket path's statement with an OperationalError instead of holding them for
ever; once it answers again, the same code works without a restart."""

import socket
import threading
import time
import uuid

import psycopg
import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection
from django.test import RequestFactory
from psycopg_pool import ConnectionPool

from core import asyncdb, dbdeadline
from core.errors import Unavailable
from messaging import services
from rooms.services import room_create
from tests.faults.proxy import ProxyThread

TIMEOUT = 0.5  # seconds, for waits on the frozen database: what the tests wait for is the error
GENEROUS = 60.0  # seconds, for waits that must succeed, however loaded the machine


@pytest.fixture
def frozen_db():
    """A proxy to the test database (tests freeze and restore it) and its connection string."""
    db = connection.settings_dict
    if not db["HOST"] or db["HOST"].startswith("/"):
        pytest.skip("the proxy reaches PostgreSQL over TCP (DATABASE_URL names a unix socket)")
    proxies = ProxyThread()
    proxy = proxies.start((db["HOST"], int(db["PORT"] or 5432)))
    host, port = proxy.address.split(":")
    params = {"host": host, "port": port, "user": db["USER"], "password": db["PASSWORD"] or "", "dbname": db["NAME"]}
    try:
        yield proxy, params
    finally:
        proxy.restore()
        proxies.stop()


@pytest.mark.django_db(transaction=True)
def test_a_statement_past_its_deadline_fails_and_the_rest_of_the_request_gives_up(frozen_db):
    proxy, params = frozen_db
    frozen = dbdeadline.DeadlineConnection.connect(**params, connect_timeout=30)
    db = connection.settings_dict
    healthy = dbdeadline.DeadlineConnection.connect(**(params | {"host": db["HOST"], "port": db["PORT"] or 5432}))
    try:
        with dbdeadline.budget(GENEROUS):
            assert frozen.execute("SELECT 1").fetchone() == (1,)
        proxy.freeze()
        with dbdeadline.budget(TIMEOUT):
            with pytest.raises(dbdeadline.StatementTimeout, match="did not answer within"):
                frozen.execute("SELECT 2")
            assert frozen.broken
            # The request has given up on PostgreSQL: even a connection that would answer fails.
            with pytest.raises(dbdeadline.StatementTimeout, match="earlier in this request"):
                healthy.execute("SELECT 3")
    finally:
        frozen.close()
        healthy.close()


@pytest.mark.django_db(transaction=True)
def test_outside_a_budget_nothing_is_bounded(frozen_db):
    _, params = frozen_db
    conn = dbdeadline.DeadlineConnection.connect(**params)
    try:
        assert conn.execute("SELECT pg_sleep(2 * %s), 1", [TIMEOUT]).fetchone()[1] == 1
    finally:
        conn.close()


@pytest.mark.django_db(transaction=True)
def test_the_pool_gives_up_on_a_frozen_database_and_serves_again_once_it_answers(frozen_db):
    proxy, params = frozen_db
    pool = ConnectionPool(
        kwargs=params | {"connect_timeout": 2},
        min_size=3,
        timeout=TIMEOUT,
        connection_class=dbdeadline.DeadlineConnection,
        check=ConnectionPool.check_connection,
        open=True,
    )
    try:
        pool.wait(timeout=30)
        proxy.freeze()
        with dbdeadline.budget(TIMEOUT), pytest.raises(psycopg.OperationalError):
            pool.getconn()  # each idle connection's health check hangs: the first one's deadline ends it
        proxy.restore()
        with dbdeadline.budget(GENEROUS):
            conn = pool.getconn(timeout=GENEROUS)
            assert conn.execute("SELECT 1").fetchone() == (1,)
            pool.putconn(conn)
    finally:
        proxy.restore()
        pool.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_socket_paths_statement_fails_past_its_deadline_and_works_again_after(frozen_db, monkeypatch):
    proxy, params = frozen_db
    monkeypatch.setattr(settings, "DB_STATEMENT_TIMEOUT", GENEROUS)
    django_params = asyncdb.connection_params
    monkeypatch.setattr(asyncdb, "connection_params", lambda: django_params() | params)

    assert await asyncdb.fetchall("SELECT 1 AS one", []) == [{"one": 1}]
    proxy.freeze()
    monkeypatch.setattr(settings, "DB_STATEMENT_TIMEOUT", TIMEOUT)
    with pytest.raises(dbdeadline.StatementTimeout, match="did not answer"):
        await asyncdb.fetchall("SELECT 2 AS two", [])  # on the open connection
    with pytest.raises(dbdeadline.StatementTimeout, match="no connection"):
        await asyncdb.fetchall("SELECT 3 AS three", [])  # a new connection gets no answer either
    proxy.restore()
    monkeypatch.setattr(settings, "DB_STATEMENT_TIMEOUT", GENEROUS)
    assert await asyncdb.fetchall("SELECT 4 AS four", []) == [{"four": 4}]


@pytest.mark.asyncio
async def test_every_request_has_its_budget():
    """DeadlineMiddleware, sync and async: the view runs inside a budget of DB_STATEMENT_TIMEOUT."""
    seen = []

    def view(request):
        seen.append(dbdeadline._budget.get())
        return None

    async def async_view(request):
        return view(request)

    dbdeadline.DeadlineMiddleware(view)(RequestFactory().get("/"))
    await dbdeadline.DeadlineMiddleware(async_view)(RequestFactory().get("/"))

    assert [b is not None and b.timeout for b in seen] == [settings.DB_STATEMENT_TIMEOUT] * 2
    assert dbdeadline._budget.get() is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_send_cut_off_by_its_deadline_and_retried_is_stored_once(frozen_db, monkeypatch, make_user):
    """The cut statement may still reach PostgreSQL (the proxy delivers what it held once it is
    restored): the retry with the same client_msg_id and it make one message."""
    proxy, params = frozen_db
    monkeypatch.setattr(settings, "DB_STATEMENT_TIMEOUT", GENEROUS)
    django_params = asyncdb.connection_params
    monkeypatch.setattr(asyncdb, "connection_params", lambda: django_params() | params)
    ada = await database_sync_to_async(make_user)("ada")
    room = await database_sync_to_async(room_create)(creator=ada, name="Cut")

    def send(content: str, key: str) -> dict:
        return {"user": ada, "room_id": str(room.pk), "content": content, "client_msg_id": key}

    [(_, created)] = await services.amessage_send_many(requests=[send("warm", str(uuid.uuid4()))])
    assert created
    key = str(uuid.uuid4())
    proxy.freeze()
    monkeypatch.setattr(settings, "DB_STATEMENT_TIMEOUT", TIMEOUT)
    [refused] = await services.amessage_send_many(requests=[send("once", key)])
    assert isinstance(refused, Unavailable)
    proxy.restore()
    monkeypatch.setattr(settings, "DB_STATEMENT_TIMEOUT", GENEROUS)
    [(message, _)] = await services.amessage_send_many(requests=[send("once", key)])
    again = [(m.pk, m.sequence) for m in await _stored(room, key)]

    assert again == [(message.pk, message.sequence)]


@database_sync_to_async
def _stored(room, key):
    from messaging.models import Message

    return list(Message.objects.filter(room=room, client_msg_id=key))


def test_a_forked_child_starts_a_watchdog_of_its_own():
    """The watchdog thread does not survive fork(): a child must not count on its parent's."""
    import os
    import time

    token = dbdeadline._watchdog.watch(-1, time.monotonic() + 3600)  # the parent's thread runs now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a fresh watchdog, no thread yet
        os.write(write, b"1" if dbdeadline._watchdog.thread is None and not dbdeadline._watchdog.waits else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    try:
        assert os.read(read, 1) == b"1"
    finally:
        os.close(read)
        os.close(write)
        dbdeadline._watchdog.unwatch(token)


class CountingCondition(threading.Condition):
    def __init__(self) -> None:
        super().__init__()
        self.notified = 0

    def notify(self, n: int = 1) -> None:
        self.notified += 1
        super().notify(n)


def test_statements_one_after_another_wake_the_watchdog_thread_once():
    """A woken thread takes the GIL from the event loop: a wait due after the watchdog's next look
    (as each statement of a request is, DB_STATEMENT_TIMEOUT after it starts) does not wake it."""
    watchdog = dbdeadline._Watchdog()
    watchdog.condition = CountingCondition()
    watchdog.thread = threading.current_thread()  # stands in for its thread: none is started, none looks
    now = time.monotonic()
    for i in range(5):
        watchdog.unwatch(watchdog.watch(-1, now + 3600 + i))
    assert watchdog.condition.notified == 1
    watchdog.unwatch(watchdog.watch(-1, now + 1800))  # due before its next look: woken
    assert watchdog.condition.notified == 2


def test_a_wait_registered_without_waking_the_watchdog_is_still_cut_at_its_deadline():
    """The watchdog sleeps until an earlier wait's deadline, then finds the later one and cuts it."""
    watchdog = dbdeadline._Watchdog()
    first, peer_of_first = socket.socketpair()
    second, peer = socket.socketpair()
    try:
        now = time.monotonic()
        watchdog.unwatch(watchdog.watch(first.fileno(), now + 0.2))  # answered in time
        token = watchdog.watch(second.fileno(), now + 0.4)  # no wake: due after the first
        peer.settimeout(GENEROUS)
        assert peer.recv(1) == b""  # shut down: the thread looked again at 0.2 s and cut it at 0.4 s
        assert watchdog.unwatch(token)  # the deadline passed
        peer_of_first.sendall(b"x")
        assert first.recv(1) == b"x"  # the first, answered in time, was left alone
    finally:
        for sock in (first, peer_of_first, second, peer):
            sock.close()
