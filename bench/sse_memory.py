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
Memory only: CPU and latency are bench/load.py's. The method is bench/memory.py's (bench/socket_memory.py's
too).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import memory  # noqa: E402  (sets the environment)

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


def request(port: int, cookie: str) -> bytes:
    """What the child sends on each stream."""
    return (
        f"GET /api/v1/events/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
        f"Cookie: sessionid={cookie}\r\n\r\n".encode()
    )


def main() -> None:
    args = memory.start(__doc__, request, "streams", default=400, top=25, frames=6)
    from accounts.models import User
    from bench.load import sessions_for
    from rooms.models import Membership
    from rooms.services import room_create

    users = [User.objects.create(username=f"sse{n}") for n in range(args.streams + memory.WARM_UP)]
    for start in range(0, len(users), 10):
        group = users[start : start + 10]
        room = room_create(creator=group[0], name=f"Room {start // 10}", kind="private")
        Membership.objects.bulk_create([Membership(room=room, user=user) for user in group[1:]])
    cookies = sessions_for(users)

    server = memory.serve(loop="uvloop", http="httptools", lifespan="off")
    memory.measure(
        __file__, server, "stream", [cookies[user.pk] for user in users], OWNERS, args, innermost_first=False
    )


if __name__ == "__main__":
    main()
