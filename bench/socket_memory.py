"""Where an idle WebSocket's server memory goes (issue 15): one ASGI server in this process, traced
by tracemalloc, with N sockets open against none. bench/sse_memory.py's method, for sockets.

    scripts/stack.py bench -- .venv/bin/python bench/socket_memory.py [--sockets 2000] [--top 25] [--rss-only]

It migrates the throwaway database, makes `sockets` users in rooms of 10 (the `connections`
scenario of bench/load.py) with session cookies, starts uvicorn with scripts/serve.py's options
(uvloop, httptools, websockets-sansio, no compression, no pings) in a thread of this process,
opens and closes a few sockets to warm it up, takes a snapshot, then opens the sockets from a child
process (so that the clients' memory is not counted) with a browser's handshake headers and, once
every one has had its `session.ready`, takes another. Printed: the RSS growth and the traced growth
per socket, and the allocation sites that grew most (per socket, with their traceback's innermost
frames); with --rss-only, no tracemalloc (it costs memory of its own) and the RSS growth alone.
Memory only: CPU and latency are bench/load.py's (`--scenario connections`).
"""

import argparse
import asyncio
import base64
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
    ("uvicorn (protocol, queue, scope)", "/uvicorn/"),  # before websockets/: its module is websockets_sansio_impl
    ("websockets (handshake request/response, parser)", "/websockets/"),
    ("Channels (router, consumer base)", "/channels/"),
    ("our socket middleware (accounts/middleware.py)", f"{ROOT}/accounts/middleware.py"),
    ("the consumer (messaging/consumers.py)", f"{ROOT}/messaging/consumers.py"),
    ("boards' socket frames", f"{ROOT}/boards/"),
    ("hub, sequencer, rate limits (core/)", f"{ROOT}/core/"),
    ("presence", f"{ROOT}/presence/"),
    ("audit context", f"{ROOT}/audit/"),
    ("config/asgi.py", f"{ROOT}/config/"),
    ("structlog (log context)", "/structlog/"),
    ("Django (user, sessions, db)", "/django/"),
    ("asgiref", "/asgiref/"),
    ("redis", "/redis/"),
    ("psycopg", "/psycopg/"),
    ("asyncio", "/asyncio/"),
]

# What Chrome sends to open a WebSocket (besides Host, Origin, Cookie and the key).
BROWSER_HEADERS = (
    "Pragma: no-cache\r\nCache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Safari/537.36\r\nAccept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: en-GB,en;q=0.9\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
)


def client(port: int, cookies: list[str]) -> None:
    """The child process: open one socket per cookie, print "ready" once each had session.ready,
    then hold them until stdin closes (the server's frames are unmasked text, so session.ready can
    be found in the raw bytes)."""

    async def run() -> None:
        held = []

        async def open_one(cookie: str) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            key = base64.b64encode(secrets.token_bytes(16)).decode()
            writer.write(
                f"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                f"Origin: http://127.0.0.1:{port}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
                f"{BROWSER_HEADERS}Cookie: sessionid={cookie}\r\n\r\n".encode()
            )
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--frames", type=int, default=8, help="traceback frames kept per allocation")
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

    from bench.load import seed, sessions_for
    from scripts.serve import UVICORN_OPTIONS

    users, _, _ = seed(args.sockets + 10, 10, "ws")
    cookies = sessions_for(users)
    from django.db import connections

    connections.close_all()

    options = dict(zip(UVICORN_OPTIONS[1::2], UVICORN_OPTIONS[2::2], strict=True))  # after --proxy-headers
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        "config.asgi:application",
        host="127.0.0.1",
        port=port,
        loop=options["--loop"],
        http=options["--http"],
        ws=options["--ws"],
        lifespan=options["--lifespan"],
        ws_per_message_deflate=options["--ws-per-message-deflate"] == "true",
        ws_ping_interval=float(options["--ws-ping-interval"]) or None,
        proxy_headers=True,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)

    def hold(selected: list) -> subprocess.Popen:
        cookie_file = Path(f"/tmp/socket-memory-{os.getpid()}.txt")
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
    sockets = users[: args.sockets]
    n = len(sockets)
    if args.rss_only:
        child = hold(sockets)
        time.sleep(2)
        print(f"{n} sockets: RSS +{(process.memory_info().rss - rss_before) / 1024 / n:.1f} KB per socket")
        release(child)
        server.should_exit = True
        return
    before = tracemalloc.take_snapshot()
    child = hold(sockets)
    time.sleep(2)
    after, rss_after = tracemalloc.take_snapshot(), process.memory_info().rss
    traced = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    rss = (rss_after - rss_before) / 1024 / n
    print(f"{n} sockets: RSS +{rss:.1f} KB per socket (tracemalloc's own included), traced +{traced / 1024 / n:.1f} KB")
    print("\nby owner (the innermost frame of ours or of a library that names one), per socket:")
    owners: dict[str, int] = {}
    for stat in after.compare_to(before, "traceback"):
        frames = reversed(list(stat.traceback))  # innermost first
        owner = next((label for frame in frames for label, part in OWNERS if part in frame.filename), "other")
        owners[owner] = owners.get(owner, 0) + stat.size_diff
    for owner, size in sorted(owners.items(), key=lambda item: -item[1]):
        print(f"  {size / 1024 / n:6.2f} KB  {owner}")
    print("\nby line (innermost frame), per socket:")
    for stat in after.compare_to(before, "lineno")[: args.top]:
        print(f"  {stat.size_diff / n:8.0f} B {stat.count_diff / n:6.1f} blocks  {stat.traceback[0]}")
    print("\nby traceback, per socket:")
    for stat in after.compare_to(before, "traceback")[: args.top]:
        print(f"  {stat.size_diff / n:8.0f} B {stat.count_diff / n:6.1f} blocks")
        for frame in list(reversed(stat.traceback))[: args.frames]:  # innermost first
            print(f"        {frame}")
    release(child)
    server.should_exit = True


if __name__ == "__main__":
    main()
