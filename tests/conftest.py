"""Shared fixtures. Tests run against real PostgreSQL and Redis (see scripts/stack.py)."""

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from channels.layers import channel_layers
from django.conf import settings
from django.db import connection

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
