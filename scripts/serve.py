#!/usr/bin/env python3
"""Production entry point: N ASGI worker processes sharing one listening socket.

    python scripts/serve.py [--workers N] [--host 127.0.0.1] [--port 8000] [--server uvicorn]

WEB_CONCURRENCY (or --workers) sets N; the default is the number of CPU cores. This process opens
the socket once and every worker accepts from it (the kernel spreads connections), so one
address serves them all; the Redis channel layer carries events between workers. A worker that
dies is restarted; SIGTERM/SIGINT stop them all.

ASGI_SERVER (or --server) picks the server: uvicorn (with uvloop and httptools; the default,
measured faster: docs/performance.md) or daphne (Channels' reference server, also what
`manage.py runserver` uses).
"""

import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = "config.asgi:application"


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


def worker_command(server: str, fd: int) -> list[str]:
    if server == "daphne":
        return [sys.executable, "-m", "daphne", "--fd", str(fd), "--proxy-headers", APP]
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "--fd", str(fd), *UVICORN_OPTIONS, APP]
    raise SystemExit(f"unknown --server {server!r} (daphne or uvicorn)")


def listen(host: str, port: int) -> socket.socket:
    """The socket every worker accepts from, with TCP_NODELAY set on it.

    Workers get it as a bare file descriptor, which uvicorn wraps as an AF_UNIX socket, so neither
    uvicorn nor uvloop turn Nagle's algorithm off on the connections they accept. Linux copies
    the option from the listening socket instead. Without it, the second of two small frames
    written back to back (a sender's own message.new, then its message.ack) waited for the
    client's delayed ACK: ~40 ms (docs/performance.md)."""
    listener = socket.create_server((host, port), backlog=4096)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.set_inheritable(True)
    return listener


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1))
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--server", default=os.environ.get("ASGI_SERVER") or "uvicorn")
    args = parser.parse_args()

    # Every WebSocket holds a file descriptor: allow as many as the hard limit permits.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    listener = listen(args.host, args.port)  # kept open (and referenced) for the workers' lifetime
    fd = listener.fileno()
    command = worker_command(args.server, fd)

    workers: dict[int, subprocess.Popen] = {}
    stopping = False

    def start(slot: int) -> None:
        workers[slot] = subprocess.Popen(command, cwd=ROOT, pass_fds=[fd])

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(args.workers):
        start(slot)
    print(
        f"serving on http://{args.host}:{args.port}/ with {args.workers} {args.server} workers",
        file=sys.stderr,
        flush=True,
    )

    while not stopping:
        time.sleep(0.5)
        for slot, process in list(workers.items()):
            if process.poll() is not None and not stopping:
                print(f"worker {slot} exited with {process.returncode}; restarting", file=sys.stderr, flush=True)
                time.sleep(1)
                start(slot)

    for process in workers.values():
        process.terminate()
    deadline = time.monotonic() + 15
    for process in workers.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
