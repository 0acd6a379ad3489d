"""The method bench/socket_memory.py and bench/sse_memory.py share (issue 15): the server under
measure is uvicorn in a thread of the measuring process, traced by tracemalloc; the connections are
opened by a child process (so that the clients' memory is not counted), the script itself run again
with --client. Importing this module sets the environment the scripts run with (production
settings, as bench/load.py's servers); a script then calls start(), makes its users and their
session cookies, then calls serve() and measure().
"""

import argparse
import asyncio
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 10  # connections opened and closed before measuring (a script makes this many users more)
os.environ.update(
    {
        key: os.environ.get(key) or value
        for key, value in {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "0",
            "SECRET_KEY": "bench-" + secrets.token_urlsafe(48),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",
            "LOG_LEVEL": "WARNING",
        }.items()
    }
)


def start(
    doc: str, request: Callable[[int, str], bytes], count: str, default: int, top: int, frames: int
) -> argparse.Namespace:
    """A script's start: its command line (--<count> connections to measure, --top, --frames,
    --rss-only); run as measure()'s child (--client PORT:COOKIE_FILE, hidden), hold the connections
    with client() and exit; otherwise migrate the throwaway database and set Django up."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(f"--{count}", type=int, default=default)
    parser.add_argument("--top", type=int, default=top)
    parser.add_argument("--frames", type=int, default=frames, help="traceback frames kept per allocation")
    parser.add_argument("--rss-only", action="store_true", help="no tracemalloc: the RSS growth alone, as served")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args.client, request)
        raise SystemExit
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], check=True, cwd=ROOT)
    import django

    django.setup()
    return args


def client(where: str, request: Callable[[int, str], bytes]) -> None:
    """The child process (--client PORT:COOKIE_FILE): open one connection per cookie and send it
    request(port, cookie), print "ready" once each had session.ready, then hold them until stdin
    closes (the server's frames and events are plain text, so session.ready can be found in the
    raw bytes)."""
    port_text, cookie_file = where.split(":", 1)
    port, cookies = int(port_text), Path(cookie_file).read_text().split()

    async def run() -> None:
        held = []

        async def open_one(cookie: str) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request(port, cookie))
            seen = b""
            while b"session.ready" not in seen:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionError(seen[:200])
                seen += chunk
            held.append((reader, writer))

        semaphore = asyncio.Semaphore(50)

        async def bounded(cookie: str) -> None:
            async with semaphore:
                await open_one(cookie)

        await asyncio.gather(*(bounded(cookie) for cookie in cookies))
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(run())


def serve(**config: Any) -> uvicorn.Server:
    """uvicorn serving config.asgi:application with `config` on a free port, in a thread of this
    process, once it has started. This thread's database connections (the seeding's) are closed
    first."""
    from django.db import connections

    connections.close_all()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config("config.asgi:application", host="127.0.0.1", port=port, log_level="warning", **config)
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


def measure(
    script: str,
    server: uvicorn.Server,
    noun: str,
    cookies: list[str],
    owners: list[tuple[str, str]],
    args: argparse.Namespace,
    *,
    innermost_first: bool,
) -> None:
    """Open the last WARM_UP `cookies`' connections and close them, then measure the server's
    growth while the others' are open (one `noun` each) and print it: the RSS alone with
    args.rss_only, otherwise the RSS and the traced growth, by owner (the first of `owners`, (label,
    part of a file name), that an allocation's traceback names, innermost frame first), by line and
    by traceback (its args.frames frames printed innermost first or outermost first), args.top of
    each. Then stop the server."""
    port = server.config.port

    def hold(selected: list[str]) -> subprocess.Popen:
        cookie_file = Path(f"/tmp/{Path(script).stem.replace('_', '-')}-{os.getpid()}.txt")
        cookie_file.write_text(" ".join(selected))
        child = subprocess.Popen(
            [sys.executable, script, "--client", f"{port}:{cookie_file}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        return child

    def release(child: subprocess.Popen) -> None:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()

    if not args.rss_only:
        tracemalloc.start(args.frames)
    release(hold(cookies[-WARM_UP:]))  # warm-up: imports, pools, first queries
    time.sleep(2)
    process = psutil.Process()
    rss_before = process.memory_info().rss
    measured = cookies[:-WARM_UP]
    n = len(measured)
    if args.rss_only:
        child = hold(measured)
        time.sleep(2)
        print(f"{n} {noun}s: RSS +{(process.memory_info().rss - rss_before) / 1024 / n:.1f} KB per {noun}")
        release(child)
        server.should_exit = True
        return
    before = tracemalloc.take_snapshot()
    child = hold(measured)
    time.sleep(2)
    after, rss_after = tracemalloc.take_snapshot(), process.memory_info().rss
    traced = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    rss = (rss_after - rss_before) / 1024 / n
    print(f"{n} {noun}s: RSS +{rss:.1f} KB per {noun} (tracemalloc's own included), traced +{traced / 1024 / n:.1f} KB")
    print(f"\nby owner (the innermost frame of ours or of a library that names one), per {noun}:")
    grown: dict[str, int] = {}
    for stat in after.compare_to(before, "traceback"):
        frames = reversed(list(stat.traceback))  # innermost first
        owner = next((label for frame in frames for label, part in owners if part in frame.filename), "other")
        grown[owner] = grown.get(owner, 0) + stat.size_diff
    for owner, size in sorted(grown.items(), key=lambda item: -item[1]):
        print(f"  {size / 1024 / n:6.2f} KB  {owner}")
    print(f"\nby line (innermost frame), per {noun}:")
    for stat in after.compare_to(before, "lineno")[: args.top]:
        print(f"  {stat.size_diff / n:8.0f} B {stat.count_diff / n:6.1f} blocks  {stat.traceback[0]}")
    print(f"\nby traceback, per {noun}:")
    for stat in after.compare_to(before, "traceback")[: args.top]:
        print(f"  {stat.size_diff / n:8.0f} B {stat.count_diff / n:6.1f} blocks")
        shown = list(reversed(stat.traceback)) if innermost_first else list(stat.traceback)
        for frame in shown[: args.frames]:
            print(f"        {frame}")
    release(child)
    server.should_exit = True
