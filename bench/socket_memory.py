"""Where an idle WebSocket's server memory goes (issue 15): one ASGI server in this process, traced
by tracemalloc, with N sockets open against none. bench/sse_memory.py's method (bench/memory.py), for
sockets.

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

import base64
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import memory  # noqa: E402  (sets the environment)

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


def request(port: int, cookie: str) -> bytes:
    """What the child sends on each socket: a browser's handshake."""
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    return (
        f"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        f"Origin: http://127.0.0.1:{port}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
        f"{BROWSER_HEADERS}Cookie: sessionid={cookie}\r\n\r\n".encode()
    )


def main() -> None:
    args = memory.start(__doc__, request, "sockets", default=2000, top=40, frames=8)
    from bench.load import seed, sessions_for
    from scripts.serve import UVICORN_OPTIONS

    users, _, _ = seed(args.sockets + memory.WARM_UP, 10, "ws")
    cookies = sessions_for(users)

    options = dict(zip(UVICORN_OPTIONS[1::2], UVICORN_OPTIONS[2::2], strict=True))  # after --proxy-headers
    server = memory.serve(
        loop=options["--loop"],
        http=options["--http"],
        ws=options["--ws"],
        lifespan=options["--lifespan"],
        ws_per_message_deflate=options["--ws-per-message-deflate"] == "true",
        ws_ping_interval=float(options["--ws-ping-interval"]) or None,
        proxy_headers=True,
    )
    memory.measure(__file__, server, "socket", [cookies[user.pk] for user in users], OWNERS, args, innermost_first=True)


if __name__ == "__main__":
    main()
