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


@pytest.fixture
def start_server(transactional_db) -> Iterator[Callable[[], str]]:
    """Start real daphne processes serving Parley on 127.0.0.1; returns their base URLs.

    The servers read and write this test's database, so tests using them see committed data
    only (hence transactional_db).
    """
    processes: list[subprocess.Popen] = []

    def start() -> str:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
            cwd=ROOT,
            env=server_env(),
            stdout=subprocess.DEVNULL,
            stderr=None,
        )
        processes.append(process)
        wait_for_port(port, process)
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
