#!/usr/bin/env python3
"""Production entry point: N ASGI worker processes sharing one listening socket.

    python scripts/serve.py [--workers N] [--host 127.0.0.1] [--port 8000] [--server uvicorn]

WEB_CONCURRENCY (or --workers) sets N; the default is the number of CPU cores. This process opens
the socket once and every worker accepts from it (the kernel spreads connections), so one
address serves them all; the Redis channel layer carries events between workers.

uvicorn workers are forks of this process, which imports the app once before it starts them
(`preload`): a worker killed or crashed is serving again some 25 ms later instead of after a fresh
interpreter's import of Django and the app (about 1 s on an idle machine, 2-2.5 s on one busy with
a reconnect storm; docs/performance.md), and the workers share the loaded code's memory pages
(each adds ~11 MB of its own at start, against ~88 MB when each imported everything). What that
asks of this process: it never serves, counts or opens a connection (Django's and Redis's are
opened lazily, in the workers); the metrics' threads it started on import stop at the fork
(core.metrics restarts them in the child, and never forks mid-flush; here the pool sampler finds
no pool and sets nothing), so no lock is held across the fork; a worker's name is read when asked
(core.metrics.worker), not at import. An app that fails to import (bad settings) stops this
process at once with the traceback, instead of workers crash-looping. A forked worker drops the supervisor's signal
handling and descriptors, names itself web-<slot> (ps, psutil), and runs uvicorn's own command
line in-process. New code needs this process restarted: a restarted worker runs what it loaded.
daphne's workers start from scratch.

Exactly N serving processes, supervised by this one only:
- Each worker is a single-process server: uvicorn gets `--workers 1` and no WEB_CONCURRENCY in
  its environment (uvicorn reads that variable as its own --workers, and would otherwise run a
  supervisor of its own forking N more: N² servers, restarting its workers after seconds, and
  leaving them running unsupervised when it is killed).
- A worker that dies is restarted at once: this process sleeps until a child exits (SIGCHLD, or
  SIGTERM/SIGINT, wake it through a wakeup fd), not on a timer. Only a worker that keeps dying
  within 10 s of its start (a crash loop: uvicorn failing at start, say) waits: 0.5 s before its
  second restart in a row, doubling up to 10 s. A worker that ran for 10 s or more is restarted at once.
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


# A forked worker's logging is Django's already (settings.LOGGING, applied when this process
# imported the app). uvicorn is given no --log-level and a configuration that only sets its access
# log to WARNING, so its loggers end as in a worker started from scratch, where Django's
# configuration comes after uvicorn's (core/logs.py): uvicorn.error at LOG_LEVEL through our
# pipeline, no access lines.
FORKED_LOGGING = ["--log-config", str(ROOT / "config" / "uvicorn_logging.json")]


def uvicorn_arguments(fd: int, forked: bool = False) -> list[str]:
    # One process, never uvicorn's own multiprocess supervisor (this script is the supervisor);
    # a graceful stop that ends within STOP_TIMEOUT.
    own = ["--workers", "1", "--timeout-graceful-shutdown", "10", "--backlog", str(BACKLOG)]
    options = UVICORN_OPTIONS
    if forked:
        at = options.index("--log-level")
        options = [*options[:at], *options[at + 2 :], *FORKED_LOGGING]
    return ["--fd", str(fd), *own, *options, APP]


def worker_command(server: str, fd: int) -> list[str]:
    """The command of a worker started from scratch (daphne's; uvicorn's are forked, see preload)."""
    if server == "daphne":
        return [sys.executable, "-m", "daphne", "--fd", str(fd), "--proxy-headers", APP]
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", *uvicorn_arguments(fd)]
    raise SystemExit(f"unknown --server {server!r} (daphne or uvicorn)")


def preload() -> Callable[[int], int]:
    """Import the app here, once, and return what runs a uvicorn worker in a process forked from
    this one (given the listening socket's fd): it serves until uvicorn stops and returns its
    exit status. See the module docstring for why, and what this process must not do."""
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from uvicorn.main import main as uvicorn_command  # the click command `uvicorn` runs

    import config.asgi  # noqa: F401  (Django set up, every module of the app imported)

    def serve(fd: int) -> int:
        try:
            uvicorn_command.main(args=uvicorn_arguments(fd, forked=True), prog_name="uvicorn")
        except SystemExit as exit:
            return exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        return 0

    return serve


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


def kill_group(process: "Worker") -> None:
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


def exited(process: "Worker") -> bool:
    """Whether the worker has exited, without reaping it (its pid keeps naming its group)."""
    if process.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


class Forked:
    """A worker forked from this process: what supervising it needs of a subprocess.Popen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def name_process(name: str) -> None:
    """The name ps, top and psutil show for this process (Linux: its main thread's comm)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(15, name.encode()[:15])  # 15 == PR_SET_NAME


Worker = subprocess.Popen | Forked


class Supervisor:
    def __init__(
        self,
        worker: list[str] | Callable[[int], int],
        fd: int,
        workers: int,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        """`worker`: the command a worker runs (started from scratch), or the function a forked
        worker runs with `fd` (see preload)."""
        self.worker, self.fd, self.count = worker, fd, workers
        self.stop_timeout = stop_timeout
        self.workers: dict[int, Worker] = {}
        self.started_at: dict[int, float] = {}
        self.quick_deaths: dict[int, int] = dict.fromkeys(range(workers), 0)
        self.restart_at: dict[int, float] = {}  # slots waiting out a back-off
        self.stopping = False

    def start(self, slot: int) -> None:
        name = f"web-{slot}"
        if callable(self.worker):
            self.workers[slot] = self.fork(name, self.worker)
        else:
            self.workers[slot] = subprocess.Popen(
                self.worker,
                cwd=ROOT,
                env=worker_environment() | {"PARLEY_WORKER": name},
                pass_fds=[self.fd],
                process_group=0,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        self.started_at[slot] = time.monotonic()

    def fork(self, name: str, serve: Callable[[int], int]) -> Forked:
        """A worker that is a copy of this process, the app already imported: it leads its own
        process group, dies with this process, and has none of the supervisor's signal handling."""
        request_death = die_with_parent(signal.SIGTERM)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            try:
                os.setpgid(pid, pid)  # also done in the child: whichever runs first
            except OSError:  # the child did it first, or has exited already: fine either way
                pass
            return Forked(pid)
        status = 1
        try:
            os.setpgid(0, 0)
            if request_death is not None:
                request_death()
            signal.set_wakeup_fd(-1)
            for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
                signal.signal(number, signal.SIG_DFL)
            # The supervisor's own descriptors: closing the child's copies leaves the parent's
            # alone (a selector's close never unregisters: epoll's interest list is shared).
            self.selector.close()
            self.wakeup_read.close()
            self.wakeup_write.close()
            os.environ.pop("WEB_CONCURRENCY", None)  # uvicorn would read it as its own --workers
            os.environ["PARLEY_WORKER"] = name
            name_process(name)
            status = serve(self.fd)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)

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
        self.wakeup_read, self.wakeup_write = socket.socketpair()
        self.wakeup_read.setblocking(False)
        self.wakeup_write.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.wakeup_read, selectors.EVENT_READ)

        def stop(signum, frame) -> None:
            self.stopping = True

        # The handlers only note what happened; the C-level handler writes the signal's number to
        # the wakeup socket at once, so the select returns for every child exit and every stop.
        signal.set_wakeup_fd(self.wakeup_write.fileno(), warn_on_full_buffer=False)
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
    # uvicorn's workers are forked from this process once it has imported the app; daphne's start
    # from scratch.
    worker = preload() if args.server == "uvicorn" else worker_command(args.server, listener.fileno())
    supervisor = Supervisor(worker, listener.fileno(), args.workers, args.stop_timeout)
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
