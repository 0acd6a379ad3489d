"""scripts/serve.py: the listening socket its workers share, and how it supervises them.

The supervision tests run a real scripts/serve.py (WEB_CONCURRENCY=2) on a free 127.0.0.1 port
against this test run's database and Redis, and look at its process tree with psutil. To make
one particular worker answer, the others are stopped (SIGSTOP) for the request: a stopped process
cannot accept, so the kernel hands the connection to the one left; psutil then confirms which
process holds the server end of the connection."""

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import uvloop
import websockets.sync.client
from prometheus_client.parser import text_string_to_metric_families
from serve import BACKLOG, die_with_parent, listen, worker_command  # scripts/ is on sys.path (tests/conftest.py)

from tests.conftest import ROOT, free_port, server_env, wait_for_port, wait_until

WORKERS = 2
# Bounds, not measurements: a worker imports Django before it accepts (slow on a loaded machine).
STARTUP = 60.0
# A dead worker's replacement is started as soon as serve.py sees the death (the old loop slept
# 0.5 s + 1 s first).
RESTART = 1.0


def test_uvicorn_workers_keep_the_accept_queue_serve_py_asked_for():
    """uvicorn listens again on the socket it is given (--fd), with its own --backlog: the workers
    must be given serve.py's, or the queue shrinks to uvicorn's default 2048 once one starts."""
    import inspect

    import uvicorn.server

    assert "create_server(create_protocol, sock=sock, ssl=config.ssl, backlog=config.backlog)" in inspect.getsource(
        uvicorn.server
    )
    command = worker_command("uvicorn", 3)
    assert command[command.index("--backlog") + 1] == str(BACKLOG)


def test_connections_accepted_from_the_shared_socket_have_nagle_off():
    """Accepted the way uvicorn accepts from --fd (the fd wrapped as AF_UNIX, so no TCP options
    are set), a connection still has TCP_NODELAY: it inherits it from the listener."""

    async def accepted_nodelay() -> int:
        listener = listen("127.0.0.1", 0)
        as_uvicorn_sees_it = socket.fromfd(listener.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)
        got = asyncio.get_running_loop().create_future()

        class Protocol(asyncio.Protocol):
            def connection_made(self, transport):
                sock = transport.get_extra_info("socket")
                got.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Protocol, sock=as_uvicorn_sees_it)
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", listener.getsockname()[1])
            result = await asyncio.wait_for(got, 5)
            writer.close()
            return result
        finally:
            server.close()
            listener.close()

    assert uvloop.run(accepted_nodelay()) == 1


# -- a real serve.py -------------------------------------------------------------------------------


def started_at(process: psutil.Process) -> float:
    """When `process` was forked, in CLOCK_BOOTTIME seconds: the kernel's record (/proc/PID/stat
    field 22, in clock ticks), precise to a tick, where psutil's create_time is off by up to 1 s."""
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


def alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Serve:
    """A running scripts/serve.py and the processes under it."""

    def __init__(self, server: str, *options: str, env: dict[str, str] | None = None, output: Path | None = None):
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "scripts/serve.py", "--host", "127.0.0.1", "--port", str(self.port), *options],
            cwd=ROOT,
            env=server_env() | {"WEB_CONCURRENCY": str(WORKERS), "ASGI_SERVER": server} | (env or {}),
            stdout=subprocess.DEVNULL if output is None else output.open("w"),
            stderr=None if output is None else subprocess.STDOUT,
            preexec_fn=die_with_parent(signal.SIGKILL),  # if this test run dies, so does serve.py
        )
        self.seen: dict[int, psutil.Process] = {}  # every descendant ever seen, for the clean-up
        wait_for_port(self.port, self.process)

    def descendants(self) -> list[psutil.Process]:
        """serve.py's living descendants (not zombies it has yet to reap)."""
        try:
            found = [p for p in psutil.Process(self.process.pid).children(recursive=True) if alive(p)]
        except psutil.NoSuchProcess:
            return []
        self.seen.update((p.pid, p) for p in found)
        return found

    def workers(self, expected: int = WORKERS) -> list[psutil.Process]:
        """The descendants, once there are `expected` of them (bounded wait); never more."""
        found: list[psutil.Process] = []

        def counted() -> bool:
            found[:] = self.descendants()
            assert len(found) <= expected, f"{len(found)} processes under serve.py, expected {expected}"
            return len(found) == expected

        wait_until(counted, timeout=STARTUP, what=f"{expected} workers under serve.py")
        return found

    def answer_from(self, worker: psutil.Process, path: str = "/api/v1/me/") -> tuple[int, dict]:
        """A request answered by `worker` (every other descendant stopped meanwhile): its status
        and JSON body. Waits (bounded) for the worker to start accepting."""
        others = [p for p in self.descendants() if p.pid != worker.pid]
        for other in others:
            other.suspend()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=STARTUP)
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                body = response.read()
                client_port = connection.sock.getsockname()[1]
                tree = self.descendants()
                holders = {
                    p.pid
                    for p in tree
                    if any(c.raddr and c.raddr.port == client_port for c in p.net_connections("tcp"))
                }
            finally:
                connection.close()
        finally:
            for other in others:
                other.resume()
        assert holders == {worker.pid}, f"answered by {holders}, not by {worker.pid}; under serve.py: " + ", ".join(
            f"{p.pid} (child of {p.ppid()})" for p in tree
        )
        return response.status, json.loads(body)

    def assert_answers(self, worker: psutil.Process) -> None:
        """`worker` serves the API: an unauthenticated request is refused, in JSON."""
        status, body = self.answer_from(worker)
        assert status in (401, 403), (status, body)

    def refuses_connections(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
        except ConnectionRefusedError:
            return True
        return False

    def wait_all_gone(self, processes: list[psutil.Process], timeout: float = 20) -> None:
        """Every one of `processes` exits, and then nothing accepts on the port any more (a
        multi-threaded process shows as a zombie while its other threads, which still hold its
        file descriptors, are exiting: the port is the proof nobody serves)."""
        wait_until(lambda: not any(alive(p) for p in processes), timeout=timeout, what="the workers to exit")
        wait_until(self.refuses_connections, timeout=timeout, what=f"port {self.port} to refuse connections")

    def kill_everything(self) -> None:
        for process in [*self.seen.values(), *self.descendants()]:
            try:
                process.resume()
                process.kill()
            except psutil.NoSuchProcess:
                pass
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def serve(transactional_db) -> Iterator[Callable[..., Serve]]:
    """Call it to start scripts/serve.py with WORKERS workers (the servers read this test's
    database, hence transactional_db); everything it started is killed afterwards."""
    started: list[Serve] = []

    def start(server: str = "uvicorn", *options: str, **keywords) -> Serve:
        started.append(Serve(server, *options, **keywords))
        return started[-1]

    yield start
    for running in started:
        running.kill_everything()


@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_web_concurrency_starts_exactly_that_many_workers_and_each_serves(serve, server):
    """uvicorn reads WEB_CONCURRENCY as its own --workers: passed on, it made each of serve.py's
    workers a supervisor of WEB_CONCURRENCY more (4 servers for 2)."""
    running = serve(server)
    workers = running.workers()
    for worker in workers:
        running.assert_answers(worker)
    assert {p.pid for p in running.descendants()} == {p.pid for p in workers}
    assert all(p.ppid() == running.process.pid for p in workers)  # children, nobody's grandchildren


def test_a_killed_worker_is_replaced_at_once_and_the_count_stays_exact(serve):
    running = serve()
    victim, survivor = running.workers()
    running.assert_answers(victim)

    killed_at = time.clock_gettime(time.CLOCK_BOOTTIME)
    victim.kill()
    replacements: list[psutil.Process] = []

    def replaced() -> bool:
        found = running.descendants()
        assert len(found) <= WORKERS, f"{len(found)} processes under serve.py"
        replacements[:] = [p for p in found if p.pid not in (victim.pid, survivor.pid)]
        return bool(replacements) and not alive(victim)

    wait_until(replaced, timeout=STARTUP, what="a replacement for the killed worker")
    (replacement,) = replacements
    # When serve.py forked it, by the kernel's clock (not when this test's polling saw it).
    restarted_after = started_at(replacement) - killed_at
    assert restarted_after < RESTART
    running.assert_answers(replacement)  # once it has imported Django (bounded by STARTUP)
    running.assert_answers(survivor)
    assert {p.pid for p in running.workers()} == {survivor.pid, replacement.pid}
    print(f"replacement forked {restarted_after * 1000:.0f} ms after the kill")


def test_uvicorn_workers_are_forks_of_the_loaded_app_named_after_their_slot_and_counted_apart(serve):
    """serve.py imports the app once and forks each uvicorn worker from itself (a restart takes
    milliseconds, not an import): no exec, the slot's name in ps and /healthz, and each worker's
    metrics in files of its own (a fork that kept writing its parent's would lose counts)."""
    running = serve("uvicorn", env={"METRICS_TOKEN": "t" * 32})
    workers = running.workers()
    # Named by themselves right after the fork (until then, serve.py's name).
    wait_until(lambda: sorted(w.name() for w in workers) == ["web-0", "web-1"], timeout=STARTUP, what="the names")
    for worker in workers:
        assert worker.cmdline() == psutil.Process(running.process.pid).cmdline()  # a copy of serve.py, nothing exec'd
        assert running.answer_from(worker, "/healthz") == (200, {"status": "ok", "worker": worker.name()})
    asked = {workers[0].pid: 3, workers[1].pid: 2}
    for worker in workers:
        for _ in range(asked[worker.pid]):
            running.assert_answers(worker)

    def counted() -> bool:  # each worker writes its tally out every second
        connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=STARTUP)
        connection.request("GET", "/metrics", headers={"Authorization": "Bearer " + "t" * 32})
        text = connection.getresponse().read().decode()
        connection.close()
        total = sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "parley_http_requests_total" and sample.labels.get("route") == "api/v1/me/"
        )
        assert total <= 5, text
        return total == 5

    wait_until(counted, timeout=STARTUP, what="the five requests in /metrics")


def test_a_forked_workers_logs_go_through_the_apps_pipeline_as_a_started_ones_did(serve, tmp_path):
    """Django's logging was set up when serve.py imported the app; uvicorn in the fork must not
    replace it: its own lines in the JSON pipeline, redacted, and no access lines."""
    output = tmp_path / "serve.log"
    running = serve("uvicorn", env={"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}, output=output)
    (worker, _) = running.workers()
    running.assert_answers(worker)
    with websockets.sync.client.connect(f"ws://127.0.0.1:{running.port}/ws/?ticket=secret-ticket") as socket_:
        try:
            socket_.recv(timeout=STARTUP)  # refused: the server closes it
        except websockets.exceptions.ConnectionClosed:
            pass
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=30) == 0
    lines = [json.loads(line) for line in output.read_text().splitlines() if line.startswith("{")]
    loggers = {line["logger"] for line in lines}
    assert "parley.access" in loggers and "uvicorn.error" in loggers
    assert "uvicorn.access" not in loggers
    assert any("Started server process" in line["event"] for line in lines)
    assert "secret-ticket" not in output.read_text()


def test_killing_serve_py_takes_its_workers_down(serve):
    """Even SIGKILL (nothing in serve.py runs): the workers asked the kernel to die with it, so
    nothing is left accepting from the socket."""
    running = serve()
    workers = running.workers()
    for worker in workers:
        running.assert_answers(worker)

    running.process.kill()
    assert running.process.wait(timeout=10) == -signal.SIGKILL
    running.wait_all_gone(workers)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_stop_everything_cleanly(serve, stop):
    running = serve()
    workers = running.workers()
    for worker in workers:
        running.assert_answers(worker)

    running.process.send_signal(stop)
    assert running.process.wait(timeout=30) == 0
    running.wait_all_gone(workers)


def test_a_worker_that_does_not_stop_is_killed_and_serve_py_still_exits_cleanly(serve):
    """A worker that ignores SIGTERM (here: stopped, so the signal waits) is killed after the stop
    timeout; serve.py then waits for its exit and ends with 0 (it crashed on an infinite select
    timeout once it had killed one, seen with 9,500 sockets per worker)."""
    running = serve("uvicorn", "--stop-timeout", "1")
    workers = running.workers()
    for worker in workers:
        running.assert_answers(worker)
    stuck, _ = workers
    stuck.suspend()

    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=30) == 0
    running.wait_all_gone(workers)


def test_a_worker_does_not_load_daphne_but_runserver_is_still_daphnes():
    """daphne's app (its `runserver`) installs Twisted's reactor on import: a fifth of a worker's
    start for nothing (config/settings.py). A worker's Django has no daphne app and no Twisted;
    `manage.py runserver` is still daphne's ASGI server (its --noasgi option)."""
    probe = (
        "import sys, django; from django.conf import settings; import config.asgi; "
        "print('daphne' in settings.INSTALLED_APPS, 'twisted.internet.reactor' in sys.modules)"
    )
    env = server_env() | {"DJANGO_SETTINGS_MODULE": "config.settings"}
    worker = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert worker.stdout.split() == ["False", "False"]
    runserver = subprocess.run(
        [sys.executable, "manage.py", "runserver", "--help"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert runserver.returncode == 0 and "--noasgi" in runserver.stdout
