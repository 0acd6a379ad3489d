"""What the server process itself spends on a socket ticket, a sync REST request and a socket's connect (issue 15):

    scripts/stack.py bench -- .venv/bin/python bench/inprocess.py [N]

The connect scenario of bench/load.py measures a whole box: servers, kernel, PostgreSQL, Redis and
the load generator share two cores, so a change of a tenth in the servers hides in its spread.
Here one process runs config.asgi's application on its own event loop (uvloop, as the servers
do) and counts its CPU (every thread of it) for:

- `ticket`: N `POST /api/v1/auth/ws-ticket/` with a Bearer token, 64 at a time, straight into
  the ASGI application (Django's handler and middleware, the view, Redis), without HTTP parsing;
- `rooms`: N `GET /api/v1/rooms/` with a Bearer token (a sync DRF view, on the request threads),
  64 at a time, the same way; `rooms alone`: the same, one at a time;
- `connect`: N sockets with a session cookie, 256 at a time, each through uvicorn's own
  HTTP and WebSocket protocols (the handshake parsed and answered as on a real server) on an
  in-memory transport, counted at its `session.ready`: authentication, the rooms read, groups
  joined, presence announced to the room's other members.

Each phase starts after a `gc.collect()` and reports, besides CPU and wall time per item, how late
the event loop ran meanwhile (a task that sleeps 1 ms in a loop records by how much it woke late:
p50, p99 and max; what every socket of the process waits, e.g. while request threads hold the GIL)
and the process's context switches per item (every thread's: a thread woken for nothing shows
there). No system calls for the sockets: the difference from bench/load.py's server CPU per
connect is the kernel's share and what real sockets and a larger heap add there (not measured
apart).
Ratios between versions run one after the other mean the most. PostgreSQL and Redis are real
(`scripts/stack.py bench`: durable).
"""

import asyncio
import gc
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402  (production settings, Django set up, seeding helpers)

subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, check=True)

import uvicorn  # noqa: E402
import uvloop  # noqa: E402
from rest_framework_simplejwt.tokens import AccessToken  # noqa: E402
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: E402
from uvicorn.server import ServerState  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
WARM = min(N, 256)  # requests or sockets first, not counted: imports, prepared statements, pools


class Transport(asyncio.Transport):
    """A socket's transport in memory: counts what the server writes; closing ends the protocol."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closing = False
        self.protocol: asyncio.Protocol | None = None
        self.ready = asyncio.get_running_loop().create_future()  # session.ready was written

    def write(self, data) -> None:
        self.written += len(data)
        if not self.ready.done() and b'"session.ready"' in data:
            self.ready.set_result(None)

    def writelines(self, chunks) -> None:
        for chunk in chunks:
            self.write(chunk)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol) -> None:  # uvicorn hands the socket to its WebSocket protocol
        self.protocol = protocol

    def get_protocol(self):
        return self.protocol

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)


async def measure(name: str, items: list, run, batch: int) -> None:
    for start in range(0, WARM, batch):
        await asyncio.gather(*(run(item) for item in items[start : min(start + batch, WARM)]))
    counted = items[WARM:]
    gc.collect()  # what earlier phases left is not this one's to collect
    lags: list[float] = []
    ticker = asyncio.create_task(lateness(lags))
    switches = context_switches()
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, len(counted), batch):
        await asyncio.gather(*(run(item) for item in counted[start : start + batch]))
    cpu, wall = (time.process_time() - cpu) * 1000 / len(counted), (time.perf_counter() - wall) * 1000 / len(counted)
    switches = (context_switches() - switches) / len(counted)
    ticker.cancel()
    lags.sort()
    late = " ".join(
        f"{label} {lags[int(q * (len(lags) - 1))]:.1f}" for label, q in (("p50", 0.5), ("p99", 0.99), ("max", 1))
    )
    print(
        f"{name}: {cpu:.3f} ms of CPU each (wall {wall:.3f} ms; loop late ms {late}; "
        f"{switches:.1f} context switches each), n={len(counted)}"
    )


def context_switches() -> int:
    """The process's (every thread's) context switches so far, voluntary or not: a thread woken
    and put to sleep again costs two."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw + usage.ru_nivcsw


async def lateness(lags: list[float]) -> None:
    """By how many ms a 1 ms sleep wakes late, over and over: the event loop's lag."""
    while True:
        before = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append((time.perf_counter() - before) * 1000 - 1)


async def main() -> None:
    from config.asgi import application

    users, _, _ = await asyncio.to_thread(load.seed, N + WARM, 10, "inprocess")
    tokens = [str(AccessToken.for_user(user)) for user in users]
    cookies = await asyncio.to_thread(load.sessions_for, users)

    async def request(method: str, path: str, token: str) -> None:
        sent: list[dict] = []
        body = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict:
            if body:
                return body.pop()
            await asyncio.Event().wait()  # the client never hangs up
            return {}

        async def send(message: dict) -> None:
            sent.append(message)

        headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode()), (b"content-length", b"0")]
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        }  # fmt: skip
        await application(scope, receive, send)
        assert sent[0]["status"] == 200, sent[0]

    await measure("ticket", tokens, lambda token: request("POST", "/api/v1/auth/ws-ticket/", token), 64)
    await measure("rooms", tokens, lambda token: request("GET", "/api/v1/rooms/", token), 64)
    await measure("rooms alone", tokens, lambda token: request("GET", "/api/v1/rooms/", token), 1)

    config = uvicorn.Config(
        application, ws="websockets-sansio", ws_per_message_deflate=False, ws_ping_interval=0, lifespan="off"
    )
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    opened: list[Transport] = []

    async def connect(user) -> None:
        transport = Transport()
        transport.protocol = HttpToolsProtocol(config, state, app_state={}, _loop=loop)
        transport.protocol.connection_made(transport)
        transport.protocol.data_received(
            b"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Origin: http://127.0.0.1\r\nCookie: sessionid=" + cookies[user.pk].encode() + b"\r\n\r\n"
        )
        opened.append(transport)
        await asyncio.wait_for(transport.ready, 60)

    await measure("connect", users, connect, 256)
    for transport in opened:
        transport.close()
    await asyncio.sleep(1)  # the goodbyes


uvloop.run(main())
