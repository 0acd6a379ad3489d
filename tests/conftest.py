"""Shared fixtures. Tests run against real PostgreSQL and Redis (see scripts/stack.py)."""

import asyncio
import email
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import redis
from aiosmtpd.controller import Controller
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from core import events as core_events
from tests.sockets import TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from serve import APP, UVICORN_OPTIONS  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _nobody_left_on_the_test_database(django_db_setup, django_db_blocker) -> Iterator[None]:
    """At the end of the run, before the test database is dropped: the connections this process
    still has open to it go. The event-loop connections of core.asyncdb live as long as their loop
    (a server's process); here each test has a loop of its own, and what those left open until
    the collector reaches them made the drop fail ("being accessed by other users")."""
    yield
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        connection.close()
        close_pool = getattr(connection, "close_pool", None)
        if close_pool is not None:
            close_pool()


@pytest.fixture(autouse=True)
def _fresh_redis() -> None:
    """Each test starts with an empty Redis (tickets, cache, presence, rate limits)."""
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


@dataclass
class RecordedEvent:
    """One event as it left core.events: its groups, its handler type, and its client frame."""

    groups: list[str]
    type: str
    event: dict

    @property
    def frame(self) -> dict | None:
        """The frame sockets receive (parsed), for events that carry one."""
        return json.loads(self.event["text"]) if "text" in self.event else None


class EventRecorder:
    """Every event published while a test runs, in publish order (after commit, as sockets get them)."""

    def __init__(self) -> None:
        self.recorded: list[RecordedEvent] = []
        self.waiters: list[tuple[Callable[[EventRecorder], bool], asyncio.Future]] = []
        self.lock = threading.Lock()  # events may be recorded from another thread's loop

    def __len__(self) -> int:
        return len(self.recorded)

    def frames(self, frame_type: str | None = None, *, group: str | None = None) -> list[dict]:
        """The client frames published (of `frame_type`, to `group`), in order."""
        return [
            e.frame
            for e in self.recorded
            if e.frame is not None
            and (frame_type is None or e.frame.get("type") == frame_type)
            and (group is None or group in e.groups)
        ]

    def of_type(self, event_type: str) -> list[RecordedEvent]:
        return [e for e in self.recorded if e.type == event_type]

    def clear(self) -> None:
        self.recorded.clear()

    def record(self, groups: list[str], event: dict) -> None:
        with self.lock:
            self.recorded.append(RecordedEvent(list(groups), event["type"], dict(event)))
            for waiter in list(self.waiters):
                predicate, future = waiter
                if predicate(self):
                    self.waiters.remove(waiter)
                    future.get_loop().call_soon_threadsafe(lambda f=future: f.done() or f.set_result(None))

    async def wait_for(self, predicate: Callable[["EventRecorder"], bool], timeout: float = 10) -> None:
        """Wait until `predicate(self)` holds; fails after `timeout` (a bound, not a measurement)."""
        future = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        with self.lock:
            if predicate(self):
                return
            self.waiters.append(waiter)
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            with self.lock:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)


@pytest.fixture
def events(monkeypatch) -> EventRecorder:
    """Records the events services publish (core.events' one publish point) and still delivers them.

    Events go out after commit: in tests without transaction=True, wrap the service call in
    `django_capture_on_commit_callbacks(execute=True)`."""
    recorder = EventRecorder()
    publish = core_events._publish

    async def recording_publish(items: list) -> None:
        for groups, event in items:
            recorder.record(groups, event)
        await publish(items)

    monkeypatch.setattr(core_events, "_publish", recording_publish)
    return recorder


def client_for(user) -> APIClient:
    """A REST client authenticated as `user`."""
    api = APIClient()
    api.force_authenticate(user)
    return api


@pytest.fixture
def make_user(django_user_model) -> Callable:
    def make(username: str | None = None, password: str = "correct-horse-battery", **extra):
        username = username or f"user{uuid.uuid4().hex[:8]}"
        return django_user_model.objects.create_user(
            username=username, email=f"{username}@example.com", password=password, **extra
        )

    return make


# -- rooms and messages --------------------------------------------------------------------------


def room_with(creator, name: str = "Room", kind: str = "private", members: dict | None = None):
    """A room made by `creator` (its owner) through the service, plus `members` ({user: role})."""
    from rooms.models import Membership
    from rooms.services import room_create

    room = room_create(creator=creator, name=name, kind=kind)
    for user, role in (members or {}).items():
        Membership.objects.create(room=room, user=user, role=role)
    return room


def send_message(room, user, content: str = "hi"):
    """`user` sends `content` to `room` through the service (a new client_msg_id); the message."""
    from messaging.services import message_send

    return message_send(user=user, room_id=room.pk, content=content, client_msg_id=uuid.uuid4())[0]


# -- sockets (connect, receive_type and TIMEOUT are in tests/sockets.py) -------------------------


async def receive_types(communicator: WebsocketCommunicator, *frame_types: str) -> dict[str, dict]:
    """The next frame of each given type, in whatever order they come (a sender may see its own
    message.new before its message.ack), skipping others."""
    found: dict[str, dict] = {}
    while len(found) < len(frame_types):
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        if frame["type"] in frame_types:
            found.setdefault(frame["type"], frame)
    return found


# A frame type the consumer does not know: it answers with an `unknown_type` error.
MARKER = {"type": "test.marker"}


async def frames_before_marker(communicator: WebsocketCommunicator) -> list[dict]:
    """Every frame already on its way to this socket, without waiting for time to pass.

    Sends MARKER and returns what arrives before the consumer's answer to it. A socket's frames
    are handled one at a time, in order, and events are queued to a socket as they are published,
    so everything the socket was sent before the marker went out comes before that answer: "X was
    not sent" becomes "X is not among these", which holds on a loaded machine too, where "nothing
    arrived within 0.5 s" passes for the wrong reason. Never send another unknown frame type
    around a marker."""
    await communicator.send_json_to(MARKER)
    frames = []
    while True:
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        if frame["type"] == "error" and frame["code"] == "unknown_type":
            return frames
        frames.append(frame)


async def nothing_but_presence(communicator: WebsocketCommunicator) -> bool:
    """True if nothing but presence updates was sent to the socket so far (frames_before_marker)."""
    return all(frame["type"] == "presence" for frame in await frames_before_marker(communicator))


# -- waiting for a state, not for time --------------------------------------------------------


@asynccontextmanager
async def room_held(room: str):
    """The room's row locked by a connection of its own until the block ends (or it commits):
    the room's writers queue behind it, for a race made on purpose."""
    from core import asyncdb

    holder = await psycopg.AsyncConnection.connect(**asyncdb.connection_params())
    try:
        await holder.execute("SELECT 1 FROM rooms_room WHERE id = %s FOR UPDATE", [room])
        yield holder
    finally:
        await holder.close()


def lock_waiters() -> int:
    """Backends of the test database waiting for a lock (a row a test holds, for a race made on
    purpose): what `wait_until` waits on before the test lets go."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else the view is read once per transaction
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def wait_until(condition: Callable[[], object], *, timeout: float = 10, what: str = "the condition") -> None:
    """Poll `condition` until it holds, for state nothing announces (another process, PostgreSQL's
    lock queue, a Redis expiry). Returns as soon as it holds; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.01)


async def await_until(
    condition: Callable[[], object | Awaitable[object]], *, timeout: float = 10, what: str = "the condition"
) -> None:
    """`wait_until` for async tests (`condition` may be a coroutine function)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(0.01)


# -- SQL statements at psycopg's level -----------------------------------------------------------


class StatementLog:
    """The statements psycopg executes while `recording()`, from every connection and thread:
    Django's cursors, raw psycopg cursors on Django's connection (messaging.services' send) and
    async cursors on other connections (core.asyncdb) alike. Django's CaptureQueriesContext sees
    only the first kind. Commits and rollbacks count as a "COMMIT" or "ROLLBACK" statement; the
    BEGIN psycopg sends by itself at the start of a transaction outside autocommit is not seen
    (tests inside Django's test transaction see SAVEPOINTs instead)."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.active = False
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.statements)

    def add(self, statement: str) -> None:
        if self.active:
            with self.lock:
                self.statements.append(statement)

    @contextmanager
    def recording(self) -> Iterator["StatementLog"]:
        self.statements.clear()
        self.active = True
        try:
            yield self
        finally:
            self.active = False

    def labels(self, **names: str) -> list[str]:
        """The statements with quoted names (savepoints) elided and each statement given in
        `names` (label=SQL) shown by its label: readable in an assertion and in its failure."""
        by_sql = {sql: label for label, sql in names.items()}
        return [by_sql.get(sql) or re.sub(r'"[^"]*"', '"…"', " ".join(sql.split())) for sql in self.statements]


def _sql_text(query, cursor) -> str:
    if isinstance(query, bytes):
        return query.decode()
    if isinstance(query, str):
        return query
    return query.as_string(cursor)  # psycopg.sql.Composable


@pytest.fixture
def sql_statements(monkeypatch) -> StatementLog:
    """A StatementLog; wrap the code to measure in `with sql_statements.recording():`."""
    log = StatementLog()

    def wrap_execute(cls, name):
        original = getattr(cls, name)
        if asyncio.iscoroutinefunction(original):

            async def wrapper(self, query, *args, **kwargs):
                log.add(_sql_text(query, self))
                return await original(self, query, *args, **kwargs)

        else:

            def wrapper(self, query, *args, **kwargs):
                log.add(_sql_text(query, self))
                return original(self, query, *args, **kwargs)

        monkeypatch.setattr(cls, name, wrapper)

    def wrap_end(cls, name):
        original = getattr(cls, name)
        if asyncio.iscoroutinefunction(original):

            async def wrapper(self):
                log.add(name.upper())
                return await original(self)

        else:

            def wrapper(self):
                log.add(name.upper())
                return original(self)

        monkeypatch.setattr(cls, name, wrapper)

    for cls in (psycopg.Cursor, psycopg.AsyncCursor):
        wrap_execute(cls, "execute")
        wrap_execute(cls, "executemany")
    for cls in (psycopg.Connection, psycopg.AsyncConnection):
        wrap_end(cls, "commit")
        wrap_end(cls, "rollback")
    return log


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port} within {timeout}s")


def server_env() -> dict[str, str]:
    """Environment for a server process that shares this test run's database and Redis."""
    db = connection.settings_dict
    host = quote(db["HOST"] or "", safe="")  # a unix socket directory is percent-encoded
    port = f":{db['PORT']}" if db["PORT"] else ""
    url = f"postgres://{db['USER']}:{quote(db['PASSWORD'] or '', safe='')}@{host}{port}/{db['NAME']}"
    return {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": settings.REDIS_URL,
        "PARLEY_TESTING": "1",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DB_CONN_MAX_AGE": "0",
    }


def production_env(*, static_root: Path) -> dict[str, str]:
    """`server_env()` with production settings (not PARLEY_TESTING: the manifest static storage,
    among others), its collectstatic writing to `static_root`: a production collectstatic deletes
    and rewrites hashed files, which servers and tests reading the checkout's staticfiles/ at the
    same time found missing (WhiteNoise's scan at start: FileNotFoundError)."""
    env = {key: value for key, value in server_env().items() if key != "PARLEY_TESTING"}
    return env | {"STATIC_ROOT": str(static_root)}


class LiveServers:
    """Real server processes (uvicorn, run as scripts/serve.py runs it) serving Parley on 127.0.0.1,
    sharing this test's database and Redis."""

    def __init__(self) -> None:
        self.processes: dict[int, subprocess.Popen] = {}

    def __call__(self, port: int | None = None, **env: str) -> str:
        """Start a server (on `port`, e.g. to bring a killed one back; `env` adds settings from
        the environment); returns its base URL."""
        port = port or free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), *UVICORN_OPTIONS, APP],
            cwd=ROOT,
            env=server_env() | env,
            stdout=subprocess.DEVNULL,
            stderr=None,
        )
        self.processes[port] = process
        wait_for_port(port, process)
        return f"http://127.0.0.1:{port}"

    def kill(self, url: str) -> None:
        """SIGKILL the server at `url`: no close frames, no cleanup, like a crashed host."""
        process = self.processes.pop(int(url.rsplit(":", 1)[1]))
        process.kill()
        process.wait()

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def start_server(transactional_db) -> Iterator[LiveServers]:
    """Call it to start a real server process; returns its base URL (see LiveServers).

    The servers read and write this test's database, so tests using them see committed data
    only (hence transactional_db).
    """
    servers = LiveServers()
    yield servers
    servers.stop_all()


# -- mail: aiosmtpd, a real SMTP server (password reset, email changes, invitations) ---------------


class Inbox:
    """What the SMTP server received, as parsed messages."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's handler hook
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[Inbox]:
    """Django sends mail through SMTP to an aiosmtpd server on 127.0.0.1; yields its inbox."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        with override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=controller.port,
        ):
            yield inbox
    finally:
        controller.stop()
