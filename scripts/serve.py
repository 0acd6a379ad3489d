#!/usr/bin/env python3
"""Production entry point: N ASGI worker processes sharing one listening socket.

    python scripts/serve.py [--workers N] [--host 127.0.0.1] [--port 8000] [--server uvicorn]

WEB_CONCURRENCY (or --workers) sets N; the default is the number of CPU cores. This process opens
the socket once and every worker accepts from it (the kernel spreads connections), so one
address serves them all; the Redis channel layer carries events between workers.

Exactly N serving processes, supervised by this one only:
- Each worker is a single-process server: uvicorn gets `--workers 1` and no WEB_CONCURRENCY in
  its environment (uvicorn reads that variable as its own --workers, and would otherwise run a
  supervisor of its own forking N more: N² servers, restarting its workers after seconds, and
  leaving them running unsupervised when it is killed).
- A worker that dies is restarted at once: this process sleeps until a child exits (SIGCHLD, or
  SIGTERM/SIGINT, wake it through a wakeup fd), not on a timer. Only a worker that keeps dying
  within 10 s of its start (a crash loop: bad settings, say) waits: 0.5 s before its second
  restart in a row, doubling up to 10 s. A worker that ran for 10 s or more is restarted at once.
- Each worker leads its own process group; when it dies, whatever is left in its group (anything
  it forked) is killed with it.
- On Linux each worker asks the kernel for SIGTERM when this process dies (PR_SET_PDEATHSIG),
  so killing this process, even with SIGKILL, stops its workers too: no orphans accepting from
  the socket.
- SIGTERM/SIGINT stop every worker gracefully (SIGTERM: uvicorn closes WebSockets with 1012 and
  finishes requests, up to 10 s), kill any left after 15 s, and exit 0. The workers are in their
  own process groups, so a terminal's Ctrl-C reaches only this process, which stops them once.

Metrics (core/metrics.py, docs/metrics.md): the workers write their Prometheus values to
PROMETHEUS_MULTIPROC_DIR, which `/metrics` sums over all of them. When it is not set, this
process makes a fresh directory for this start and removes it when it stops. Each worker is named
PARLEY_WORKER=web-<slot> in the per-process series (the same name after a restart), and a dead
worker's live gauges (its open connections) are removed when it is reaped.

ASGI_SERVER (or --server) picks the server: uvicorn (with uvloop and httptools; the default,
measured faster: docs/performance.md) or daphne (Channels' reference server, also what
`manage.py runserver` uses).
"""

import argparse
import ctypes
import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = "config.asgi:application"

# A worker that lived less than this before dying counts towards a crash loop.
STABLE_AFTER = 10.0
# Back-off before restarting a crash-looping worker: FIRST_BACKOFF, doubling, at most MAX_BACKOFF.
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 10.0
# On SIGTERM/SIGINT: how long workers get to finish before they are killed.
STOP_TIMEOUT = 15.0


# How production runs uvicorn (the tests' live servers use the same options).
UVICORN_OPTIONS = [
    # Warnings only: at INFO uvicorn logs every WebSocket open and close, query string (a sign-in
    # ticket) included.
    *("--proxy-headers", "--log-level", "warning"),
    *("--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio", "--lifespan", "off"),
    # Chat frames are small; per-message deflate would cost a zlib state (~100 KB) per socket and
    # a compression per frame per socket.
    *("--ws-per-message-deflate", "false"),
    # No protocol pings: clients heartbeat every 30 s and the app closes sockets silent for 120 s
    # (messaging.consumers.Liveness); pings would be two more frames per socket for the same proof.
    *("--ws-ping-interval", "0"),
]


# The accept queue: the connections that may wait for a worker to take them (a reconnect storm, both
# workers restarting at once). Linux caps it at net.core.somaxconn (4096 by default since 5.4;
# docs/operations.md). uvicorn listens again on the socket it is given, with its own --backlog
# (2048 by default), so the workers are given ours: with 2048, a 10,000-browser storm overflowed
# the queue 30,000 times (SYNs dropped, retried by the clients after 1, 3, 7 s...).
BACKLOG = 65535


def worker_command(server: str, fd: int) -> list[str]:
    if server == "daphne":
        return [sys.executable, "-m", "daphne", "--fd", str(fd), "--proxy-headers", APP]
    if server == "uvicorn":
        # One process, never uvicorn's own multiprocess supervisor (this script is the supervisor);
        # a graceful stop that ends within STOP_TIMEOUT.
        own = ["--workers", "1", "--timeout-graceful-shutdown", "10", "--backlog", str(BACKLOG)]
        return [sys.executable, "-m", "uvicorn", "--fd", str(fd), *own, *UVICORN_OPTIONS, APP]
    raise SystemExit(f"unknown --server {server!r} (daphne or uvicorn)")


def worker_environment() -> dict[str, str]:
    """Ours, without WEB_CONCURRENCY: uvicorn would read it as its own --workers."""
    return {key: value for key, value in os.environ.items() if key != "WEB_CONCURRENCY"}


def die_with_parent(sig: int) -> Callable[[], None] | None:
    """A preexec_fn asking Linux to send `sig` to the child when this process dies, even by
    SIGKILL (as scripts/stack.py's does). If we died before the request was made, the child goes
    at once. Only the thread that starts the child counts as its parent: start it from the
    thread that lives as long as the process (here, the only one)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def request() -> None:  # runs in the child, between fork and exec
        if sig != signal.SIGKILL:  # until exec the child has our handler for `sig`, which only notes it
            signal.signal(sig, signal.SIG_DFL)
        libc.prctl(1, sig)  # 1 == PR_SET_PDEATHSIG
        if os.getppid() != parent:  # we died before the request was made
            os.kill(os.getpid(), signal.SIGKILL)

    return request


def listen(host: str, port: int) -> socket.socket:
    """The socket every worker accepts from, with TCP_NODELAY set on it.

    Workers get it as a bare file descriptor, which uvicorn wraps as an AF_UNIX socket, so neither
    uvicorn nor uvloop turn Nagle's algorithm off on the connections they accept. Linux copies
    the option from the listening socket instead. Without it, the second of two small frames
    written back to back (a sender's own message.new, then its message.ack) waited for the
    client's delayed ACK: ~40 ms (docs/performance.md)."""
    listener = socket.create_server((host, port), backlog=BACKLOG)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.set_inheritable(True)
    return listener


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL what is left of a worker's process group (it leads it: pgid == its pid). Called
    before the worker is reaped, while its pid cannot yet belong to anyone else."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def mark_dead(pid: int) -> None:
    """A worker is gone: its live gauges (open connections, pool) leave the sum, as
    prometheus_client.multiprocess.mark_process_dead does (its gauge_live*_<pid>.db files)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        for path in Path(directory).glob(f"gauge_live*_{pid}.db"):
            path.unlink(missing_ok=True)


def exited(process: subprocess.Popen) -> bool:
    """Whether the worker has exited, without reaping it (its pid keeps naming its group)."""
    if process.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


class Supervisor:
    def __init__(self, command: list[str], fd: int, workers: int, stop_timeout: float = STOP_TIMEOUT) -> None:
        self.command, self.fd, self.count = command, fd, workers
        self.stop_timeout = stop_timeout
        self.workers: dict[int, subprocess.Popen] = {}
        self.started_at: dict[int, float] = {}
        self.quick_deaths: dict[int, int] = dict.fromkeys(range(workers), 0)
        self.restart_at: dict[int, float] = {}  # slots waiting out a back-off
        self.stopping = False

    def start(self, slot: int) -> None:
        self.workers[slot] = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=worker_environment() | {"PARLEY_WORKER": f"web-{slot}"},
            pass_fds=[self.fd],
            process_group=0,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        self.started_at[slot] = time.monotonic()

    def reap(self) -> None:
        """Handle every worker that has exited: kill its group, reap it, restart or schedule."""
        for slot, process in list(self.workers.items()):
            if not exited(process):
                continue
            kill_group(process)
            process.wait()
            mark_dead(process.pid)
            del self.workers[slot]
            if self.stopping:
                continue
            lived = time.monotonic() - self.started_at[slot]
            self.quick_deaths[slot] = self.quick_deaths[slot] + 1 if lived < STABLE_AFTER else 1
            # The first death is restarted at once; a worker that keeps dying young backs off.
            repeats = self.quick_deaths[slot] - 1
            delay = 0.0 if repeats == 0 else min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (repeats - 1))
            print(
                f"worker {slot} (pid {process.pid}) exited with {process.returncode} after {lived:.1f}s; "
                + (f"restarting in {delay:.1f}s" if delay else "restarting"),
                file=sys.stderr,
                flush=True,
            )
            self.restart_at[slot] = time.monotonic() + delay

    def restart_due(self) -> None:
        now = time.monotonic()
        for slot, due in list(self.restart_at.items()):
            if due <= now:
                del self.restart_at[slot]
                self.start(slot)

    def wait_for_news(self, timeout: float | None) -> None:
        """Sleep until a signal arrives (a child exited, or SIGTERM/SIGINT) or `timeout` passes."""
        if self.selector.select(timeout):
            try:
                while self.wakeup_read.recv(4096):
                    pass
            except BlockingIOError:
                pass

    def run(self) -> None:
        """Start the workers and keep them running until SIGTERM/SIGINT."""
        self.wakeup_read, wakeup_write = socket.socketpair()
        self.wakeup_read.setblocking(False)
        wakeup_write.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.wakeup_read, selectors.EVENT_READ)

        def stop(signum, frame) -> None:
            self.stopping = True

        # The handlers only note what happened; the C-level handler writes the signal's number to
        # the wakeup socket at once, so the select returns for every child exit and every stop.
        signal.set_wakeup_fd(wakeup_write.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        for slot in range(self.count):
            self.start(slot)

        while not self.stopping:
            self.reap()
            if self.stopping:
                break
            self.restart_due()
            due = min(self.restart_at.values(), default=None)
            self.wait_for_news(None if due is None else max(0.0, due - time.monotonic()))
        self.stop_all()

    def stop_all(self) -> None:
        """SIGTERM every worker; SIGKILL those still running after the stop timeout; reap them all."""
        for process in self.workers.values():
            os.kill(process.pid, signal.SIGTERM)  # not Popen.send_signal, which may reap it (see reap)
        deadline: float | None = time.monotonic() + self.stop_timeout
        while self.workers:
            self.reap()
            if not self.workers:
                break
            if deadline is not None and time.monotonic() >= deadline:
                for process in self.workers.values():
                    print(
                        f"worker pid {process.pid} did not stop in {self.stop_timeout:g}s; killing it",
                        file=sys.stderr,
                    )
                    kill_group(process)
                deadline = None  # killed: from now on only their exits are waited for
            else:
                self.wait_for_news(None if deadline is None else deadline - time.monotonic())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1))
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--server", default=os.environ.get("ASGI_SERVER") or "uvicorn")
    parser.add_argument(
        "--stop-timeout", type=float, default=STOP_TIMEOUT, help="seconds workers get to stop before they are killed"
    )
    args = parser.parse_args()
    if args.workers < 1:
        parser.error(f"--workers/WEB_CONCURRENCY must be at least 1, not {args.workers}")

    # Every WebSocket holds a file descriptor: allow as many as the hard limit permits.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    listener = listen(args.host, args.port)  # kept open (and referenced) for the workers' lifetime
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # a fresh one for this start (docs/metrics.md)
        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="parley-metrics-")
    supervisor = Supervisor(
        worker_command(args.server, listener.fileno()), listener.fileno(), args.workers, args.stop_timeout
    )
    print(
        f"serving on http://{args.host}:{args.port}/ with {args.workers} {args.server} workers",
        file=sys.stderr,
        flush=True,
    )
    try:
        supervisor.run()
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
