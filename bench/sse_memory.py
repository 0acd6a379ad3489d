"""Where an SSE stream's server memory goes (issue 15): one ASGI server in this process, traced by
tracemalloc, with N event streams open against none.

    scripts/stack.py bench -- .venv/bin/python bench/sse_memory.py [--streams 400] [--top 25] [--rss-only]

It migrates the throwaway database, makes `streams` users in rooms of 10 (the `sse` scenario of
bench/load.py) with session cookies, starts uvicorn as scripts/serve.py does (uvloop, httptools)
in a thread of this process, opens and closes a few streams to warm it up, takes a snapshot, then
opens the streams from a child process (so that the clients' memory is not counted) and, once every
one has had its `session.ready`, takes another. Printed: the RSS growth and the traced growth per
stream, and the allocation sites that grew most (per stream, with their traceback's innermost
frames); with --rss-only, no tracemalloc (it costs memory of its own) and the RSS growth alone.
Memory only: CPU and latency are bench/load.py's.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
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


# Who an allocation is for: the first of these its traceback names, innermost frame first.
OWNERS = [
    ("Django URL resolution (ResolverMatch.tried)", "django/urls/"),
    ("Django response (headers, streaming)", "django/http/response.py"),
    ("Django request (META, GET, cookies)", "django/http/request.py"),
    ("Django database connection objects", "django/db/"),
    ("Django sessions / auth", "django/contrib/"),
    ("the stream (transports/)", "/transports/"),
    ("hub and sequencer (core/)", "/main/core/"),
    ("presence", "/presence/"),
    ("Django middleware and handler", "django/"),
    ("asgiref (contexts, threads)", "asgiref/"),
    ("uvicorn (protocol, flow control)", "uvicorn/"),
    ("redis", "redis/"),
    ("asyncio", "asyncio/"),
]


def client(port: int, cookies: list[str]) -> None:
    """The child process: open one stream per cookie, print "ready" once each had session.ready,
    then hold them until stdin closes."""

    async def run() -> None:
        writers = []

        async def open_one(cookie: str) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                f"GET /api/v1/events/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
                f"Cookie: sessionid={cookie}\r\n\r\n".encode()
            )
            seen = b""
            while b"session.ready" not in seen:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionError(seen[:200])
                seen += chunk
            writers.append((reader, writer))

        semaphore = asyncio.Semaphore(50)

        async def bounded(cookie: str) -> None:
            async with semaphore:
                await open_one(cookie)

        await asyncio.gather(*(bounded(cookie) for cookie in cookies))
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=400)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--frames", type=int, default=6, help="traceback frames kept per allocation")
    parser.add_argument("--rss-only", action="store_true", help="no tracemalloc: the RSS growth alone, as served")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        port, cookie_file = args.client.split(":", 1)
        client(int(port), Path(cookie_file).read_text().split())
        return

    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], check=True, cwd=ROOT)
    import django

    django.setup()
    import psutil
    import uvicorn

    from accounts.models import User
    from bench.load import sessions_for
    from rooms.models import Membership
    from rooms.services import room_create

    users = [User.objects.create(username=f"sse{n}") for n in range(args.streams + 10)]
    for start in range(0, len(users), 10):
        group = users[start : start + 10]
        room = room_create(creator=group[0], name=f"Room {start // 10}", kind="private")
        Membership.objects.bulk_create([Membership(room=room, user=user) for user in group[1:]])
    cookies = sessions_for(users)
    from django.db import connections

    connections.close_all()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        "config.asgi:application",
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)

    def hold(selected: list) -> subprocess.Popen:
        cookie_file = Path(f"/tmp/sse-memory-{os.getpid()}.txt")
        cookie_file.write_text(" ".join(cookies[user.pk] for user in selected))
        child = subprocess.Popen(
            [sys.executable, __file__, "--client", f"{port}:{cookie_file}"],
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
    release(hold(users[-10:]))  # warm-up: imports, pools, first queries
    time.sleep(2)
    process = psutil.Process()
    rss_before = process.memory_info().rss
    streams = users[: args.streams]
    n = len(streams)
    if args.rss_only:
        child = hold(streams)
        time.sleep(2)
        print(f"{n} streams: RSS +{(process.memory_info().rss - rss_before) / 1024 / n:.1f} KB per stream")
        release(child)
        server.should_exit = True
        return
    before = tracemalloc.take_snapshot()
    child = hold(streams)
    time.sleep(2)
    after, rss_after = tracemalloc.take_snapshot(), process.memory_info().rss
    traced = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    rss = (rss_after - rss_before) / 1024 / n
    print(f"{n} streams: RSS +{rss:.1f} KB per stream (tracemalloc's own included), traced +{traced / 1024 / n:.1f} KB")
    print("\nby owner (the innermost frame of ours or of a library that names one), per stream:")
    owners: dict[str, int] = {}
    for stat in after.compare_to(before, "traceback"):
        frames = reversed(list(stat.traceback))  # innermost first
        owner = next((label for frame in frames for label, part in OWNERS if part in frame.filename), "other")
        owners[owner] = owners.get(owner, 0) + stat.size_diff
    for owner, size in sorted(owners.items(), key=lambda item: -item[1]):
        print(f"  {size / 1024 / n:6.2f} KB  {owner}")
    print("\nby line (innermost frame), per stream:")
    for stat in after.compare_to(before, "lineno")[: args.top]:
        print(f"  {stat.size_diff / n:8.0f} B {stat.count_diff / n:6.1f} blocks  {stat.traceback[0]}")
    print("\nby traceback, per stream:")
    for stat in after.compare_to(before, "traceback")[: args.top]:
        print(f"  {stat.size_diff / n:8.0f} B {stat.count_diff / n:6.1f} blocks")
        for frame in list(stat.traceback)[: args.frames]:
            print(f"        {frame}")
    release(child)
    server.should_exit = True


if __name__ == "__main__":
    main()
