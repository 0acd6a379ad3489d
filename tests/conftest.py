"""Shared fixtures. Tests run against real PostgreSQL and Redis (see scripts/stack.py)."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from channels.layers import channel_layers
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from core import events as core_events

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from serve import APP, UVICORN_OPTIONS  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_redis() -> Iterator[None]:
    """Each test starts with an empty Redis (channel layer, tickets, cache) and its own channel
    layer object: channels-redis binds its receive lock to the event loop of the test using it."""
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


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
