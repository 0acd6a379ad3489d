"""Load benchmark: the real stack under an open-loop load of real WebSocket clients.

    make bench-load                                   # every scenario at full size (about 10 minutes)
    make bench-load ARGS="--scenario chat --rate 2000"
    make bench-load ARGS="--smoke --out /tmp/smoke"   # seconds; what CI runs (no timing checks)
    make bench-load BENCH_STACK=test                  # PostgreSQL without fsync (isolates disk stalls)

What it does, all on 127.0.0.1:

- starts Parley's production entry point (scripts/serve.py: N ASGI worker processes on one
  socket, DEBUG off) against DATABASE_URL / REDIS_URL, which `make bench-load` provides as
  throwaway PostgreSQL (durable settings: fsync and synchronous_commit on) and Redis;
- creates users, rooms and memberships in bulk (no password hashing), then signs every client in
  through the real path: a JWT access token, POST /api/v1/auth/ws-ticket/, /ws/?ticket=...;
- drives an open-loop offered rate: message i is due at t0 + i/rate whatever the server is doing,
  and its latency is measured from that due time (no coordinated omission). Every message carries
  its due time; every receiver records end-to-end latency (due -> `message.new` on its socket) and
  checks each room's numbers for loss, duplicates and reordering, against the room's
  `last_sequence` in PostgreSQL (the truth) after the run;
- samples the CPU time and RSS of every process: server workers, Redis, PostgreSQL (all backends)
  and this load generator.

Scenarios: `chat` (1,000 sockets in 100 rooms of 10), `fanout` (1,000 sockets in one room),
`connections` (10,000 idle sockets heartbeating every 30 s), `connect` (connection set-up: 4,000
users opening their sockets at once, through the ticket path, with the JWT in the handshake, and
with session cookies, then against an app that only accepts (bench/bare.py: the floor); connects/s
and CPU per connect), `storm` (10,000 browsers chatting while
the server processes are killed, one after the other, then all at once; each browser reconnects
with the web client's full-jitter back-off and syncs from its own numbers: time until all are
back, the session.ready rate curve, nothing lost or twice; not in --smoke), `sse` (1,000 users in
rooms of 10, every other one reading Server-Sent Events instead of a socket, chat at 1,000 msg/s
from the sockets: latency to SSE against
socket clients, server memory per event stream), `ramp` (the chat topology at rising
rates until p99 >= 100 ms or any loss, then a run at half the highest passing rate). With
`--mix F` (issue 16), a fraction F of the sends are replies in the thread of the room's latest
message, each naming another member of the room (@username: a notification), and as many
reactions go with them (each takes a number of its own: `message.update`
frames are counted like `message.new`, latency is measured on messages only; `--mix-parts`
keeps only some of reply, mention and reaction, to tell which costs what); with
`--alternate N` as well, the chat scenario runs N plain and N mixed phases in turn on the same
sockets and reports the mixed/plain ratios of their medians (latency, CPU per message). With
`--rest-burst N`, every second of each chat phase N users ask for their rooms list at once (a
sync REST view beside the sockets): its latency is reported with the chat's. Writes
results.json, report.md and latency.png into --out (default bench/results/). Every loop is
bounded in count and time.
"""

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import gc
import http.client
import json
import os
import random
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The servers run with production settings (DEBUG off); TLS would be terminated in front of them.
BENCH_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DEBUG": "0",
    "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-" + secrets.token_urlsafe(48),
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "0",
    "LOG_LEVEL": "WARNING",
    "METRICS_TOKEN": "bench-" + secrets.token_urlsafe(16),  # the servers' /metrics, for DeliveryClock
}
os.environ.update({key: os.environ.get(key) or value for key, value in BENCH_ENV.items()})

import django  # noqa: E402

django.setup()

import orjson  # noqa: E402
import psutil  # noqa: E402
import uvloop  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.db import connection  # noqa: E402
from picows import WSListener, WSMsgType, ws_connect  # noqa: E402
from rest_framework_simplejwt.tokens import AccessToken  # noqa: E402

from accounts.models import User  # noqa: E402
from rooms.models import Membership, Room  # noqa: E402
from scripts import serve  # noqa: E402  (production's uvicorn options)
from workspaces.models import WorkspaceMembership  # noqa: E402
from workspaces.services import default_workspace  # noqa: E402

HOST = "127.0.0.1"
P99_TARGET_MS = 100.0
HEARTBEAT_SECONDS = 30
CONNECT_CONCURRENCY = 64
# One generator process's sockets: this machine allows 20,000 open files per process and does not
# let the limit be raised, so `connections` past this many opens them from helper processes.
GENERATOR_SOCKETS = 18_000
DRAIN_SECONDS = 10.0  # after the last due message, how long we wait for stragglers at most


def log(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(ordered: list[int], p: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] / 1e6


# ---------------------------------------------------------------------------------------------
# Data: users, rooms and memberships in bulk.


def seed(sockets: int, room_size: int, tag: str) -> tuple[list[User], list[Room], list[list[User]]]:
    """`sockets` users in rooms of `room_size` (one room if room_size >= sockets)."""
    unusable = make_password(None)  # nobody signs in with a password here: tokens are minted below
    users = User.objects.bulk_create(
        [User(username=f"{tag}-{i}", email=f"{tag}-{i}@bench.invalid", password=unusable) for i in range(sockets)],
        batch_size=2000,
    )
    groups = [users[start : start + room_size] for start in range(0, sockets, room_size)]
    workspace = default_workspace()
    # Bulk-made accounts skip the hook that puts every account in the default workspace: done here.
    WorkspaceMembership.objects.bulk_create(
        [WorkspaceMembership(workspace=workspace, user=user) for user in users], batch_size=5000
    )
    rooms = Room.objects.bulk_create(
        [
            Room(name=f"{tag} {index}", kind=Room.Kind.PRIVATE, created_by=group[0], workspace=workspace)
            for index, group in enumerate(groups)
        ]
    )
    Membership.objects.bulk_create(
        [
            Membership(room=room, user=user, role=Membership.Role.OWNER if position == 0 else Membership.Role.MEMBER)
            for room, group in zip(rooms, groups, strict=True)
            for position, user in enumerate(group)
        ],
        batch_size=5000,
    )
    # Fresh statistics, as a production database has: the planner otherwise guesses at tables
    # that just grew by thousands of rows (and autovacuum would do this mid-measurement).
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE accounts_user, rooms_room, rooms_membership")
    return users, rooms, groups


def sessions_for(users: list[User]) -> dict[int, str]:
    """A signed-in browser session per user (what the sign-in form would have made), in bulk."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    store = SessionStore()
    expires = timezone.now() + dt.timedelta(days=1)
    keys = {user.pk: secrets.token_hex(16) for user in users}
    Session.objects.bulk_create(
        [
            Session(
                session_key=keys[user.pk],
                session_data=store.encode(
                    {
                        SESSION_KEY: str(user.pk),
                        BACKEND_SESSION_KEY: settings.AUTHENTICATION_BACKENDS[0],
                        HASH_SESSION_KEY: user.get_session_auth_hash(),
                    }
                ),
                expire_date=expires,
            )
            for user in users
        ],
        batch_size=2000,
    )
    return keys


def postgres_durability() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('fsync'), current_setting('synchronous_commit')")
        fsync, synchronous_commit = cursor.fetchone()
    return f"fsync={fsync}, synchronous_commit={synchronous_commit}"


def last_sequences(rooms: list[Room]) -> dict[str, int]:
    return {
        str(pk): last
        for pk, last in Room.objects.filter(pk__in=[r.pk for r in rooms]).values_list("pk", "last_sequence")
    }


# ---------------------------------------------------------------------------------------------
# Processes: the servers, and CPU/RSS of everything involved.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Servers:
    """scripts/serve.py with N workers (the production entry point); or, given `app`, that ASGI
    app under uvicorn's own N workers with production's options (the connect scenario's floor,
    bench/bare.py)."""

    def __init__(self, workers: int, server: str, app: str | None = None) -> None:
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        if app is None:
            argv = [sys.executable, str(ROOT / "scripts" / "serve.py"), "--workers", str(workers)]
            argv += ["--host", HOST, "--port", str(self.port), "--server", server]
        else:
            argv = [sys.executable, "-m", "uvicorn", app, "--workers", str(workers), "--backlog", str(serve.BACKLOG)]
            argv += ["--host", HOST, "--port", str(self.port), *serve.UVICORN_OPTIONS]
        # In its own session (Ctrl-C reaches only us), and killed if we die (no orphans).
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,  # access logs
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = http.client.HTTPConnection(HOST, self.port, timeout=5)
                connection.request("GET", "/login/")
                if connection.getresponse().status == 200 and len(self.workers()) >= workers:
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the servers did not come up")
            time.sleep(0.2)

    def workers(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def worker_name(worker: psutil.Process) -> str:
    """serve.py's name for a worker (web-0, ...): a forked uvicorn worker's process name, a
    daphne worker's PARLEY_WORKER (its environment from its start)."""
    return worker.environ().get("PARLEY_WORKER") or worker.name()


async def wait_for_worker(servers: Servers, name: str, timeout: float = 120) -> None:
    """Until the worker of slot `name` (web-0, ...) answers /healthz: after it was killed,
    serve.py restarted it, and the restarted process serves once it has loaded the app."""
    deadline = time.monotonic() + timeout

    def ask() -> str | None:
        try:
            connection = http.client.HTTPConnection(HOST, servers.port, timeout=5)
            connection.request("GET", "/healthz", headers={"Connection": "close"})
            return json.loads(connection.getresponse().read()).get("worker")
        except (OSError, ValueError, http.client.HTTPException):
            return None

    while time.monotonic() < deadline:
        if await asyncio.to_thread(ask) == name:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"worker {name} did not come back")


def service_processes(port: object, name: str) -> list[psutil.Process]:
    """The processes of the PostgreSQL or Redis server listening on `port` (with children)."""
    port = str(port)
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if name not in (process.info["name"] or "") and not any(name in part for part in cmdline[:1]):
            continue
        if port in cmdline or any(part.endswith(f":{port}") for part in cmdline):
            found.append(process)
            found.extend(process.children(recursive=True))
    return found


@contextlib.contextmanager
def few_collections():
    """This generator's cyclic collector as the servers run theirs (config/asgi.py): what exists now
    frozen out of its passes, and full passes rarer. Tens of thousands of sockets are the heap of
    many clients, not of one: left as it is, the collector's passes over them are the generator's
    CPU, taken from the same two cores as the servers (the connect scenario's generator spent 30 %
    of its time in them; docs/performance.md). New objects are still collected."""
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(10_000, 10, 10)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


class LoopStalls:
    """The generator's own stalls: the longest a 50 ms ticker ran late. A burst of frames to read
    holds this process's loop, and a session.ready is timed when it is read: a storm's rate curve
    shows such a stall as seconds of nothing, then a burst."""

    TICK = 0.05

    def __init__(self) -> None:
        self.worst = 0.0
        self.task: asyncio.Future | None = None
        self.gc_worst = 0.0  # the longest pass of the cyclic collector meanwhile
        self._gc_started = 0.0

    def _gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_worst = max(self.gc_worst, time.perf_counter() - self._gc_started)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.TICK)
            self.worst = max(self.worst, loop.time() - before - self.TICK)

    def start(self) -> None:
        self.worst = self.gc_worst = 0.0
        self.task = asyncio.ensure_future(self._tick())
        gc.callbacks.append(self._gc)

    def stop(self) -> float:
        if self.task is not None:
            self.task.cancel()
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)
        return round(self.worst, 2)


class DeliveryClock:
    """The servers' own figure of the fan-out, read from their /metrics around a phase:
    `parley_delivery_latency_seconds` (core.metrics) times each numbered change from its commit to
    its hand-over to the sockets of each process, where it was committed (about nothing) and
    across Redis in the others. The generator's latency cannot tell that apart from the database's
    and its own. Its buckets are coarse: the mean, and the share handed over within 1 and 2.5 ms."""

    NAME = "parley_delivery_latency_seconds"

    def __init__(self, servers: "Servers") -> None:
        self.port = servers.port

    async def read(self) -> dict[str, float]:
        await asyncio.sleep(1.2)  # the servers' figures are at most core.metrics.FLUSH_SECONDS (1 s) old
        return await asyncio.to_thread(self._read)

    def _read(self) -> dict[str, float]:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            connection.request("GET", "/metrics", headers={"Authorization": f"Bearer {settings.METRICS_TOKEN}"})
            body = connection.getresponse().read().decode()
        finally:
            connection.close()
        values = {}
        for line in body.splitlines():
            if line.startswith(self.NAME):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    @classmethod
    def between(cls, before: dict[str, float], after: dict[str, float]) -> dict:
        delta = {name: value - before.get(name, 0.0) for name, value in after.items()}
        count = delta.get(cls.NAME + "_count", 0.0)
        if not count:
            return {}
        return {
            "events": int(count),
            "mean_ms": round(delta[cls.NAME + "_sum"] / count * 1000, 3),
            "within_1ms": round(delta.get(cls.NAME + '_bucket{le="0.001"}', 0.0) / count, 3),
            "within_2.5ms": round(delta.get(cls.NAME + '_bucket{le="0.0025"}', 0.0) / count, 3),
        }


class CpuMeter:
    """CPU seconds used by groups of processes between start() and stop(), as % of one core."""

    def __init__(self, groups: dict[str, callable], deliveries: DeliveryClock | None = None) -> None:
        self.groups = groups
        self.deliveries = deliveries  # read by run_phase around each phase

    @staticmethod
    def _total(processes: list[psutil.Process]) -> float:
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def start(self) -> None:
        self.started = time.monotonic()
        self.before = {name: self._sample(find()) for name, find in self.groups.items()}

    def _sample(self, processes: list[psutil.Process]) -> dict[int, float]:
        result = {}
        for process in processes:
            try:
                times = process.cpu_times()
                result[process.pid] = times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return result

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self.started
        usage = {}
        for name, find in self.groups.items():
            after = self._sample(find())
            used = sum(seconds - self.before[name].get(pid, 0.0) for pid, seconds in after.items())
            usage[name] = round(100 * used / wall, 1)
        return usage


def rss_bytes(processes: list[psutil.Process]) -> int:
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


# ---------------------------------------------------------------------------------------------
# Clients


@dataclass
class RoomTrack:
    """What one socket saw of one room's numbered changes."""

    last: int
    start: int
    missing: set[int] = field(default_factory=set)
    received: int = 0


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.latencies: list[int] = []  # ns, due -> message.new
        self.ack_latencies: list[int] = []
        self.reply_latencies: list[int] = []  # --mix: the replies' (each sent after its reaction), also in `latencies`
        self.reaction_latencies: list[int] = []  # --mix: reaction sent -> its reaction.ack
        self.other_latencies: list[int] = []  # --mix: the messages that are not replies, also in `latencies`
        self.delivered = 0
        self.duplicates = 0
        self.reordered = 0
        self.acked = 0
        self.errors: dict[str, int] = {}
        self.closed = 0


REACTIONS = ["👍", "❤️", "😂", "🎉", "👀"]
# What a --mix message carries (--mix-parts): to tell which part costs what.
MIX_PARTS = {"reply", "mention", "reaction"}


class Client(WSListener):
    def __init__(self, stats: Stats, rooms: list[str]) -> None:
        self.stats = stats
        self.rooms = rooms
        self.latest: dict[str, str] = {}  # room -> id of the latest message seen (--mix)
        self.mention = ""  # a room member's username that --mix replies name
        self.reactions_sent: collections.deque[int] = collections.deque()  # --mix: when, in order
        self.tracks: dict[str, RoomTrack] = {}
        self.pending: dict[str, int] = {}  # client_msg_id -> due ns
        self.ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self.transport = None
        self.beat_timer: asyncio.TimerHandle | None = None
        self.own_latencies: list[int] | None = None  # also kept apart (--scenario sse: per transport)

    def on_ws_connected(self, transport) -> None:
        self.transport = transport
        # Heartbeat every 30 s from the connect on, like the web UI (the first at a random point
        # of the period, so 10,000 sockets spread evenly); the server closes silent sockets.
        self.beat_timer = asyncio.get_running_loop().call_later(random.uniform(0, HEARTBEAT_SECONDS), self.beat)

    def beat(self) -> None:
        if self.transport is not None and not self.transport.is_disconnected:
            self.send_frame({"type": "heartbeat", "active": False})
            self.beat_timer = asyncio.get_running_loop().call_later(HEARTBEAT_SECONDS, self.beat)

    def on_ws_disconnected(self, transport) -> None:
        if self.beat_timer is not None:
            self.beat_timer.cancel()
        self.stats.closed += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before session.ready"))

    def on_ws_frame(self, transport, frame) -> None:
        if frame.msg_type != WSMsgType.TEXT:
            return
        self.on_data(orjson.loads(frame.get_payload_as_bytes()), time.monotonic_ns())

    def on_data(self, data: dict, now: int) -> None:
        kind = data["type"]
        if kind == "message.new" or kind == "message.update":  # both numbered; updates: --mix
            if self.numbered(data) and kind == "message.new":
                self.latest[data["room"]] = data["message"]["id"]
                latency = now - int(data["message"]["content"].split(" ", 1)[0])
                self.stats.latencies.append(latency)
                if data["message"].get("reply_to"):
                    self.stats.reply_latencies.append(latency)
                else:
                    self.stats.other_latencies.append(latency)
                if self.own_latencies is not None:
                    self.own_latencies.append(latency)
        elif kind == "reaction.ack" and self.reactions_sent:
            self.stats.reaction_latencies.append(now - self.reactions_sent.popleft())
        elif kind == "message.ack":
            due = self.pending.pop(data["client_msg_id"], None)
            if due is not None:
                self.stats.acked += 1
                self.stats.ack_latencies.append(now - due)
        elif kind == "session.ready":
            for room in self.rooms:
                last = data["rooms"][room]
                self.tracks[room] = RoomTrack(last=last, start=last)
            if not self.ready.done():
                self.ready.set_result(None)
        elif kind == "error":
            self.stats.errors[data["code"]] = self.stats.errors.get(data["code"], 0) + 1

    def numbered(self, data: dict) -> bool:
        """Count a numbered change of a room (live or synced): True if it is new to this socket."""
        track = self.tracks.get(data["room"])
        if track is None:
            return False
        number = data["sequence"]
        stats = self.stats
        if number == track.last + 1:
            track.last = number
        elif number > track.last:
            track.missing.update(range(track.last + 1, number))
            track.last = number
        elif number in track.missing:
            track.missing.discard(number)
            stats.reordered += 1
        else:
            stats.duplicates += 1
            return False
        track.received += 1
        stats.delivered += 1
        return True

    def send_message(self, room: str, due_ns: int, filler: str, mixed: bool = False) -> None:
        client_msg_id = str(uuid.uuid4())
        self.pending[client_msg_id] = due_ns
        frame = {"type": "message.send", "room": room, "client_msg_id": client_msg_id, "content": f"{due_ns} {filler}"}
        latest = self.latest.get(room) if mixed else None
        if latest is not None:  # --mix: a reply in the latest message's thread, and a reaction to it
            if "reply" in MIX_PARTS:
                frame["reply_to"] = latest
            if self.mention and "mention" in MIX_PARTS:  # naming a room member: an inbox item and a live notification
                frame["content"] += f" @{self.mention}"
            if "reaction" in MIX_PARTS:
                reaction = {"type": "reaction.add", "room": room, "id": latest, "emoji": random.choice(REACTIONS)}
                self.reactions_sent.append(time.monotonic_ns())  # acked in order
                self.transport.send(WSMsgType.TEXT, orjson.dumps(reaction))
        self.transport.send(WSMsgType.TEXT, orjson.dumps(frame))

    def send_frame(self, frame: dict) -> None:
        self.transport.send(WSMsgType.TEXT, orjson.dumps(frame))

    def rebase(self) -> None:
        """Start counting a new phase from what this socket has seen so far."""
        for track in self.tracks.values():
            track.start = track.last
            track.received = 0
            track.missing.clear()


class Tickets:
    """REST requests with a JWT (the socket ticket's, POST /api/v1/auth/ws-ticket/, and
    --rest-burst's), on kept-alive HTTP/1.1 connections driven by the generator's event loop (one
    per request in flight, reused). It used to be http.client in 16 threads: the ticket phase then
    measured those threads (16 requests in flight, and the GIL shared with the loop's sockets) more
    than the servers, which idled at 63 % of their cores."""

    def __init__(self, base: str) -> None:
        parsed = urlparse(base)
        self.host, self.port = parsed.hostname or HOST, parsed.port or 80
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def ticket(self, token: str) -> str:
        return orjson.loads(await self.request("POST", "/api/v1/auth/ws-ticket/", token))["ticket"]

    async def request(self, method: str, path: str, token: str) -> bytes:
        """The body of a 200 answer (anything else raises)."""
        request = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        failures = 0
        while True:
            # A kept-alive connection may have been closed by the server meanwhile (uvicorn's
            # keep-alive timeout, 5 s): that costs a retry, not an attempt.
            reused = bool(self.idle)
            reader, writer = self.idle.pop() if reused else await asyncio.open_connection(self.host, self.port)
            try:
                writer.write(request)
                status = int((await reader.readline()).split()[1])
                length, close = 0, False
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                    elif name.lower() == b"connection" and value.strip().lower() == b"close":
                        close = True
                body = await reader.readexactly(length)
            except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
                writer.close()
                failures += not reused
                if failures == 3:
                    raise
                continue
            if close:
                writer.close()
            else:
                self.idle.append((reader, writer))
            if status != 200:
                raise RuntimeError(f"{method} {path} answered {status}: {body[:200]!r}")
            return body

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


class RestBurst:
    """--rest-burst N: every second of a chat phase, N `GET /api/v1/rooms/` at once, each with
    another user's JWT (a crowd opening the mobile app, say): a sync DRF view, run on the servers'
    request threads beside the sockets. Open loop: a burst is sent on time whether or not the one
    before it was answered. Each request's latency is taken from its burst's start."""

    PATH = "/api/v1/rooms/"

    def __init__(self, base: str, tokens: list[str], size: int) -> None:
        self.client = Tickets(base)
        self.tokens, self.size = tokens, size
        self.latencies: list[int] = []  # ns

    async def run(self, seconds: float) -> None:
        self.latencies = []
        start, tasks = time.monotonic(), []
        for burst in range(int(seconds)):
            await asyncio.sleep(max(0.0, start + burst - time.monotonic()))
            due = time.monotonic_ns()
            picked = [self.tokens[(burst * self.size + i) % len(self.tokens)] for i in range(self.size)]
            tasks += [asyncio.create_task(self.one(token, due)) for token in picked]
        await asyncio.gather(*tasks)

    async def one(self, token: str, due: int) -> None:
        await self.client.request("GET", self.PATH, token)
        self.latencies.append(time.monotonic_ns() - due)

    def result(self) -> dict:
        ordered = sorted(self.latencies)
        return {
            "requests": len(ordered),
            "p50_ms": round(percentile(ordered, 50), 1),
            "p99_ms": round(percentile(ordered, 99), 1),
            "max_ms": round(ordered[-1] / 1e6 if ordered else 0.0, 1),
        }


async def connect_all(
    base: str,
    users: list[User],
    rooms_of: dict[int, list[str]],
    stats: Stats,
    progress: str,
    *,
    cookies: dict[int, str] | None = None,
    bearer: bool = False,
    concurrency: int = CONNECT_CONCURRENCY,
    ready_ms: list[float] | None = None,
) -> list[Client]:
    """Sign every user in and open their socket; wait for session.ready. Through the ticket path
    (a JWT for a single-use ticket over REST, then /ws/?ticket=...), or with `cookies` (user ->
    session key) as a browser does: the session cookie and an Origin, or with `bearer` as a native
    client may: the JWT in the handshake's Authorization header. `ready_ms` collects each
    socket's time from its start (the ticket request included) to session.ready."""
    tickets = Tickets(base)
    clients: list[Client | None] = [None] * len(users)
    ws_base = base.replace("http://", "ws://")
    semaphore = asyncio.Semaphore(concurrency)
    done = 0
    last_report = time.monotonic()

    async def open_one(index: int, user: User) -> None:
        nonlocal done, last_report
        async with semaphore:
            started = time.perf_counter()
            if bearer:
                url, headers = f"{ws_base}/ws/", {"Authorization": f"Bearer {AccessToken.for_user(user)}"}
            elif cookies is None:
                token = str(AccessToken.for_user(user))
                url, headers = f"{ws_base}/ws/?ticket={await tickets.ticket(token)}", None
            else:
                url = f"{ws_base}/ws/"
                headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookies[user.pk]}", "Origin": base}
            _, client = await ws_connect(
                lambda: Client(stats, rooms_of[user.pk]), url, websocket_handshake_timeout=60, extra_headers=headers
            )
            await asyncio.wait_for(client.ready, 60)
            if ready_ms is not None:
                ready_ms.append((time.perf_counter() - started) * 1000)
            clients[index] = client
            done += 1
            if time.monotonic() - last_report > 2:
                last_report = time.monotonic()
                log(f"{progress}: {done}/{len(users)} sockets connected")

    try:
        await asyncio.gather(*(open_one(index, user) for index, user in enumerate(users)))
    finally:
        tickets.close()
    return clients  # type: ignore[return-value]


async def settled(servers: "Servers", *, below: float = 5.0, timeout: float = 60.0) -> None:
    """Wait until the server processes are idle (under `below` % of a core over half a second; at
    most `timeout`): the work a phase left them (closing thousands of sockets takes seconds) must
    not count against the next one. Before this, the first 256 handshakes of the connect
    scenario's cookie phase waited 3.3 s behind the ticket phase's closes: its p99."""

    def cpu_seconds() -> float:
        return CpuMeter._total(servers.workers())

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds()
        await asyncio.sleep(0.5)
        if (cpu_seconds() - before) / 0.5 * 100 < below:
            return


async def close_all(clients: list[Client]) -> None:
    for client in clients:
        if client and client.transport and not client.transport.is_disconnected:
            client.transport.send_close()
            client.transport.disconnect()
    await asyncio.sleep(0.5)


class SseClient(Client):
    """A browser on Server-Sent Events (issue 15): `GET /api/v1/events/` with its session cookie,
    read as EventSource does (the chunked body's `data:` lines, one JSON frame per event); it sends
    nothing (a browser in this mode sends over REST)."""

    async def open(self, base: str, cookie: str) -> None:
        url = urlparse(base)
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(
            f"GET /api/v1/events/ HTTP/1.1\r\nHost: {url.netloc}\r\nAccept: text/event-stream\r\n"
            f"Cookie: {settings.SESSION_COOKIE_NAME}={cookie}\r\n\r\n".encode()
        )
        status = await reader.readline()
        if b" 200 " not in status:
            raise ConnectionError(f"events: {status!r}")
        chunked = False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            chunked = chunked or line.lower().startswith(b"transfer-encoding: chunked")
        self.writer = writer
        self.reading = asyncio.get_running_loop().create_task(self._read(reader, chunked))

    async def _read(self, reader: asyncio.StreamReader, chunked: bool) -> None:
        buffer = b""
        try:
            while True:
                if chunked:
                    size = int((await reader.readline()).strip() or b"0", 16)
                    if size == 0:
                        return
                    data = await reader.readexactly(size + 2)  # the chunk and its CRLF
                    buffer += data[:-2]
                else:
                    data = await reader.read(65536)
                    if not data:
                        return
                    buffer += data
                *events, buffer = buffer.split(b"\n\n")
                now = time.monotonic_ns()
                for event in events:
                    for line in event.split(b"\n"):
                        if line.startswith(b"data: "):
                            self.on_data(orjson.loads(line[6:]), now)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.stats.closed += 1

    def close(self) -> None:
        self.reading.cancel()
        self.writer.close()


# ---------------------------------------------------------------------------------------------
# Reconnect storms: browsers that come back on their own


BASE_DELAY_S, MAX_DELAY_S = 1.0, 30.0  # static/js/live.js: full jitter, 1 s doubling up to 30 s


class Browser:
    """One user's browser across sockets, as the web client behaves (static/js/live.js): when its
    socket drops it reconnects after a random delay (full jitter, doubling per failed attempt),
    signs in with its session cookie, and syncs every room from the numbers it already has; its
    rooms' numbers outlive each socket, so a change missed or seen twice across the drop counts."""

    def __init__(self, base: str, cookie: str, rooms: list[str], stats: Stats, readies: list[float]) -> None:
        self.base, self.cookie, self.rooms, self.stats, self.readies = base, cookie, rooms, stats, readies
        self.tracks: dict[str, RoomTrack] = {}
        self.socket: StormSocket | None = None
        self.attempt = 0
        self.dropped_at: float | None = None
        self.back_after: list[float] = []  # seconds from each drop to connected and caught up
        self.drops = 0
        self.stopping = False
        self.reconnecting: asyncio.Task | None = None
        self.last_failure = ""  # why the last attempt failed (a stuck browser's report)
        self.failures: collections.Counter[str] = collections.Counter()  # failed attempts, by why
        # Since the last drop: when the last attempt began, its handshake done, its session.ready;
        # and per return, the seconds of each step (the storm's report).
        self.marks: dict[str, float] = {}
        self.parts: list[tuple[float, float, float, float]] = []

    async def connect(self) -> None:
        headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={self.cookie}", "Origin": self.base}
        while not self.stopping:
            self.marks["attempt"] = time.monotonic()
            try:
                _, socket = await ws_connect(
                    lambda: StormSocket(self),
                    self.base.replace("http://", "ws://") + "/ws/",
                    websocket_handshake_timeout=30,
                    extra_headers=headers,
                )
                if socket.transport is None:
                    # picows 2.3.1 returns from ws_connect, without an error and without calling
                    # the listener, when the connection is lost during the handshake (a server
                    # killed with the upgrade request in hand): that browser would wait forever.
                    raise ConnectionResetError("connection lost during the handshake")
                self.marks["handshake"] = time.monotonic()
                return
            except Exception as error:  # refused or cut while the server restarts
                self.last_failure = type(error).__name__
                self.failures[self.last_failure] += 1
                self.attempt += 1
                await asyncio.sleep(random.uniform(0, min(MAX_DELAY_S, BASE_DELAY_S * 2**self.attempt)))

    def dropped(self) -> None:
        self.socket = None
        if self.stopping:
            return
        self.drops += 1
        self.dropped_at = self.dropped_at or time.monotonic()
        delay = random.uniform(0, min(MAX_DELAY_S, BASE_DELAY_S * 2**self.attempt))
        self.marks = {}  # this return's steps, from now
        # The loop keeps only a weak reference to a task: without this one, a reconnect waiting on
        # the network could be collected and that browser would never come back.
        self.reconnecting = asyncio.get_running_loop().create_task(self._reconnect(delay))

    async def _reconnect(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.connect()

    def caught_up(self) -> None:
        self.attempt = 0
        if self.dropped_at is not None:
            now = time.monotonic()
            self.back_after.append(now - self.dropped_at)
            marks = self.marks
            if {"attempt", "handshake", "ready"} <= marks.keys():
                # waiting: the drop to the last attempt (back-off, failed attempts); then that
                # attempt's handshake, its wait for session.ready, and the sync after it.
                attempt, handshake, ready = marks["attempt"], marks["handshake"], marks["ready"]
                self.parts.append((attempt - self.dropped_at, handshake - attempt, ready - handshake, now - ready))
            self.dropped_at = None


def back_parts(parts: list[tuple[float, float, float, float]]) -> dict:
    """p50 / p99 of each step of the browsers' returns: waiting (back-off and failed attempts),
    the handshake (TCP connect, the accept queue, the upgrade), session.ready after it, the sync."""
    names = ("waiting", "handshake", "to_ready", "sync")
    result = {}
    for index, name in enumerate(names):
        ordered = sorted(part[index] for part in parts)
        if ordered:
            result[name] = [round(ordered[len(ordered) // 2], 2), round(ordered[int(len(ordered) * 0.99)], 2)]
    return result


class StormSocket(Client):
    def __init__(self, browser: Browser) -> None:
        super().__init__(browser.stats, browser.rooms)
        self.browser = browser
        self.tracks = browser.tracks  # the browser's numbers, not the socket's
        self.syncing: set[str] = set()
        self.seen: list[str] = []  # the frame types received, in order (a stuck browser's report)
        self.close_code: int | None = None  # the server's, if it closed

    def on_ws_connected(self, transport) -> None:
        super().on_ws_connected(transport)
        self.browser.socket = self

    def state(self) -> str:
        """What a browser that is not back is waiting for, for the storm's report."""
        firsts = ",".join(dict.fromkeys(self.seen[:4]))
        return f"socket open, frames [{firsts}], syncing {len(self.syncing)}"

    def on_ws_disconnected(self, transport) -> None:
        if not self.ready.done():  # accepted, then closed before session.ready
            self.browser.failures[f"closed before session.ready ({self.close_code or 'no close frame'})"] += 1
        super().on_ws_disconnected(transport)
        self.browser.dropped()

    def on_ws_frame(self, transport, frame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            self.close_code = int(frame.get_close_code())
        if frame.msg_type != WSMsgType.TEXT:
            return
        data = orjson.loads(frame.get_payload_as_bytes())
        kind = data["type"]
        if len(self.seen) < 16:
            self.seen.append(kind if kind != "error" else f"error:{data['code']}")
        if kind == "session.ready":
            self.browser.readies.append(time.monotonic())
            self.browser.marks["ready"] = time.monotonic()
            for room in self.rooms:
                last = data["rooms"][room]
                track = self.tracks.get(room)
                if track is None:
                    self.tracks[room] = RoomTrack(last=last, start=last)
                elif last > track.last or track.missing:
                    self.syncing.add(room)
                    after = min(track.last, min(track.missing, default=track.last + 1) - 1)
                    self.send_frame({"type": "sync", "room": room, "after_sequence": after})
            if not self.syncing:
                self.browser.caught_up()
            if not self.ready.done():
                self.ready.set_result(None)
        elif kind == "sync.batch":
            for event in data["events"]:
                # A sync reads up to the room's latest number, so it may repeat what arrived live
                # since session.ready (clients keep each number once); only live repeats count.
                track = self.tracks.get(data["room"])
                if "sequence" in event and track is not None:
                    if event["sequence"] > track.last or event["sequence"] in track.missing:
                        self.numbered(event)
            if not data["has_more"]:
                self.syncing.discard(data["room"])
                if not self.syncing:
                    self.browser.caught_up()
        elif kind in ("message.new", "message.update"):
            self.numbered(data)
        elif kind == "error":
            self.stats.errors[data["code"]] = self.stats.errors.get(data["code"], 0) + 1


def stuck_states(browsers: list[Browser]) -> dict[str, int]:
    """How many browsers that are not back are in each state (socket open and waiting for what,
    or no socket: reconnecting, and why the last attempt failed)."""
    states: dict[str, int] = {}
    for browser in browsers:
        if browser.socket is not None:
            state = browser.socket.state()
        else:
            task = browser.reconnecting
            running = "running" if task is not None and not task.done() else "no task"
            state = f"no socket, reconnect {running}, attempt {browser.attempt}, last {browser.last_failure or '-'}"
        states[state] = states.get(state, 0) + 1
    return dict(sorted(states.items(), key=lambda item: -item[1])[:12])


def rate_curve(readies: list[float], start: float, step: float = 0.5) -> list[int]:
    """session.ready frames per `step` seconds from `start`."""
    counts: dict[int, int] = {}
    for at in readies:
        if at >= start:
            counts[int((at - start) / step)] = counts.get(int((at - start) / step), 0) + 1
    return [counts.get(index, 0) for index in range(max(counts, default=-1) + 1)]


# ---------------------------------------------------------------------------------------------
# Open-loop driving


@dataclass
class Phase:
    name: str
    offered_rate: float
    seconds: float
    result: dict = field(default_factory=dict)


async def drive(
    clients: list[Client],
    senders: list[tuple[Client, str]],
    rate: float,
    seconds: float,
    stats: Stats,
    label: str,
    mix: float = 0.0,
) -> tuple[int, float]:
    """Send `rate` messages/s for `seconds`, each at its due time from a random sender (a fraction
    `mix` of them replies, each with a reaction); returns (messages sent, seconds the generator
    fell behind the schedule at worst)."""
    filler = "x" * 48  # a typical short chat line
    total = int(rate * seconds)
    start = time.monotonic_ns() + 50_000_000
    interval = 1e9 / rate
    sent = 0
    worst_lag = 0
    next_report = time.monotonic() + 1
    pick = random.Random(7).choice
    mixing = random.Random(11).random
    while sent < total:
        now = time.monotonic_ns()
        due = start + int(sent * interval)
        if due > now:
            await asyncio.sleep(min((due - now) / 1e9, 0.05))
            continue
        worst_lag = max(worst_lag, now - due)
        # Everything due by now goes out in this tick, each stamped with its own due time.
        while sent < total and start + int(sent * interval) <= now:
            client, room = pick(senders)
            client.send_message(room, start + int(sent * interval), filler, mixed=bool(mix) and mixing() < mix)
            sent += 1
        if time.monotonic() >= next_report:
            next_report += 1
            ordered = sorted(stats.latencies[-20000:])
            log(
                f"{label}: {sent}/{total} sent, {stats.acked} acked, {stats.delivered} delivered, "
                f"recent p99 {percentile(ordered, 99):.1f} ms"
            )
        await asyncio.sleep(0)
    return sent, worst_lag / 1e9


async def wait_for_deliveries(clients: list[Client], rooms: list[Room], before: dict[str, int]) -> dict[str, int]:
    """Wait until every socket has every change the database holds for its rooms (bounded)."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while True:
        await asyncio.sleep(0.25)
        after = await asyncio.to_thread(last_sequences, rooms)
        complete = all(
            track.last >= after[room] and not track.missing
            for client in clients
            for room, track in client.tracks.items()
        )
        if complete or time.monotonic() > deadline:
            return after


def measure(
    clients: list[Client], stats: Stats, before: dict[str, int], after: dict[str, int], seconds: float, sent: int
) -> dict:
    expected = 0
    lost = 0
    for client in clients:
        for room, track in client.tracks.items():
            should = after[room] - before[room]
            expected += should
            lost += max(0, should - track.received) if track.last >= after[room] else should - track.received
    ordered = sorted(stats.latencies)
    acks = sorted(stats.ack_latencies)
    persisted = sum(after[room] - before[room] for room in after)
    return {
        "sent": sent,
        "persisted": persisted,
        "persisted_per_s": round(persisted / seconds, 1),
        "acked": stats.acked,
        "deliveries": stats.delivered,
        "expected_deliveries": expected,
        "deliveries_per_s": round(stats.delivered / seconds, 1),
        "lost": lost,
        "duplicates": stats.duplicates,
        "reordered": stats.reordered,
        "errors": dict(stats.errors),
        "sockets_closed": stats.closed,
        "latency_ms": {
            "p50": round(percentile(ordered, 50), 2),
            "p95": round(percentile(ordered, 95), 2),
            "p99": round(percentile(ordered, 99), 2),
            "max": round(ordered[-1] / 1e6, 2) if ordered else 0.0,
        },
        "ack_latency_ms": {"p50": round(percentile(acks, 50), 2), "p99": round(percentile(acks, 99), 2)},
    } | (
        {
            "reply_latency_ms": p50_p99(stats.reply_latencies),
            "other_latency_ms": p50_p99(stats.other_latencies),
            "reaction_ack_ms": p50_p99(stats.reaction_latencies),
        }
        if stats.reply_latencies
        else {}
    )


def p50_p99(latencies: list[int]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"p50": round(percentile(ordered, 50), 2), "p99": round(percentile(ordered, 99), 2)}


async def run_phase(
    clients: list[Client],
    senders,
    rooms: list[Room],
    stats: Stats,
    meter: CpuMeter,
    rate: float,
    seconds: float,
    label: str,
    mix: float = 0.0,
    rest: RestBurst | None = None,
) -> dict:
    for client in clients:
        client.rebase()
    stats.reset()
    before = await asyncio.to_thread(last_sequences, rooms)
    fanned = await meter.deliveries.read() if meter.deliveries else None
    meter.start()
    started = time.monotonic()
    bursts = asyncio.create_task(rest.run(seconds)) if rest else None
    sent, lag = await drive(clients, senders, rate, seconds, stats, label, mix)
    elapsed = time.monotonic() - started
    if bursts:
        await bursts
    cpu = meter.stop()
    after = await wait_for_deliveries(clients, rooms, before)
    result = measure(clients, stats, before, after, elapsed, sent)
    if meter.deliveries and fanned is not None:
        result["server_delivery"] = DeliveryClock.between(fanned, await meter.deliveries.read())
    result |= {"offered_rate": rate, "seconds": round(elapsed, 2), "generator_lag_s": round(lag, 3), "cpu_percent": cpu}
    result |= {"mix": mix, "mix_parts": sorted(MIX_PARTS)} if mix else {}
    result |= {"rest_burst": rest.size, "rest_latency": rest.result()} if rest else {}
    log(
        f"{label}: offered {rate:.0f}/s -> persisted {result['persisted_per_s']}/s, "
        f"{result['deliveries_per_s']} deliveries/s, p50 {result['latency_ms']['p50']} ms, "
        f"p99 {result['latency_ms']['p99']} ms, lost {result['lost']}, dup {result['duplicates']}, "
        f"reordered {result['reordered']}, cpu {cpu}"
        + (
            f"; replies {result['reply_latency_ms']}, the other messages {result['other_latency_ms']}, "
            f"reactions acked {result['reaction_ack_ms']}"
            if "reply_latency_ms" in result
            else ""
        )
        + (f"; {RestBurst.PATH} x{rest.size}/s: {result['rest_latency']}" if rest else "")
        + (f"; servers, commit to hand-over: {result['server_delivery']}" if result.get("server_delivery") else "")
    )
    return result


def compare_mix(steps: list[dict]) -> dict:
    """--alternate: the medians of the plain and the mixed phases (latency of messages, and the
    CPU of the servers, Redis and PostgreSQL per message sent), and mixed / plain for each."""

    def medians(rows: list[dict]) -> dict:
        return {
            "p50_ms": round(statistics.median(r["latency_ms"]["p50"] for r in rows), 2),
            "p99_ms": round(statistics.median(r["latency_ms"]["p99"] for r in rows), 2),
            "cpu_ms_per_message": round(
                statistics.median(
                    sum(r["cpu_percent"][part] for part in ("servers", "redis", "postgres"))
                    * 10
                    * r["seconds"]
                    / max(r["sent"], 1)
                    for r in rows
                ),
                3,
            ),
            "lost": sum(r["lost"] for r in rows),
            "duplicates": sum(r["duplicates"] for r in rows),
        } | (
            {"server_delivery_mean_ms": statistics.median(r["server_delivery"]["mean_ms"] for r in rows)}
            if all(r.get("server_delivery") for r in rows)
            else {}
        )

    plain = medians([r for r in steps if not r.get("mix")])
    mixed = medians([r for r in steps if r.get("mix")])
    ratios = {
        key: round(mixed[key] / plain[key], 3) for key in ("p50_ms", "p99_ms", "cpu_ms_per_message") if plain[key]
    }
    return {"plain": plain, "mix": mixed, "mix_over_plain": ratios}


def passes(result: dict) -> bool:
    return (
        result["latency_ms"]["p99"] < P99_TARGET_MS
        and result["lost"] == 0
        and result["duplicates"] == 0
        and result["reordered"] == 0
        and result["persisted"] >= 0.99 * result["sent"]
    )


# ---------------------------------------------------------------------------------------------
# Scenarios


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tag = f"b{uuid.uuid4().hex[:6]}"

    def meter(self, servers: Servers) -> CpuMeter:
        me = psutil.Process()
        return CpuMeter(
            {
                "servers": lambda: [psutil.Process(servers.process.pid), *servers.workers()],
                "redis": lambda: service_processes(urlparse(settings.REDIS_URL).port, "redis"),
                "postgres": lambda: service_processes(settings.DATABASES["default"]["PORT"], "postgres"),
                "load_generator": lambda: [me],
            },
            DeliveryClock(servers),
        )

    async def topology(self, name: str, sockets: int, room_size: int):
        users, rooms, groups = await asyncio.to_thread(seed, sockets, room_size, f"{self.tag}-{name}")
        rooms_of = {user.pk: [str(room.pk)] for room, group in zip(rooms, groups, strict=True) for user in group}
        return users, rooms, rooms_of

    async def messaging(self, name: str, sockets: int, room_size: int, rates: list[float], seconds: float, ramp: bool):
        args = self.args
        users, rooms, rooms_of = await self.topology(name, sockets, room_size)
        servers = Servers(args.workers, args.server)
        stats = Stats()
        try:
            clients = await connect_all(servers.base, users, rooms_of, stats, name)
            members: dict[str, list[User]] = {}
            for user in users:
                members.setdefault(rooms_of[user.pk][0], []).append(user)
            for user, client in zip(users, clients, strict=True):  # --mix names the next member
                group = members[client.rooms[0]]
                if len(group) > 1:
                    client.mention = group[(group.index(user) + 1) % len(group)].username
            senders = [(client, client.rooms[0]) for client in clients]
            meter = self.meter(servers)
            rest = None
            if args.rest_burst:
                tokens = [str(AccessToken.for_user(user)) for user in users]
                rest = RestBurst(servers.base, tokens, args.rest_burst)
            warm = max(1.0, min(rates[0] / 4, 200.0))
            await run_phase(clients, senders, rooms, stats, meter, warm, 2.0, f"{name} warm-up")
            results = []
            comparison = None
            if args.alternate and name == "chat":
                # Issue 16's clause in one run: plain and mixed phases in turn on the same sockets,
                # servers and database, so that the machine's drift falls on both alike.
                for turn in range(args.alternate):
                    for mix in (0.0, args.mix):
                        label = f"{name} @{rates[0]:.0f}/s {'mix' if mix else 'plain'} {turn + 1}"
                        results.append(
                            await run_phase(clients, senders, rooms, stats, meter, rates[0], seconds, label, mix, rest)
                        )
                comparison = compare_mix(results)
                log(f"{name}: mix against plain, medians of {args.alternate} turns each: {comparison}")
            else:
                for rate in rates:
                    result = await run_phase(
                        clients, senders, rooms, stats, meter, rate, seconds, f"{name} @{rate:.0f}/s", args.mix, rest
                    )
                    results.append(result)
                    if ramp and not passes(result):
                        break
            summary: dict = {
                "sockets": sockets,
                "rooms": len(rooms),
                "room_size": min(room_size, sockets),
                "steps": results,
            }
            if comparison is not None:
                summary["mix_comparison"] = comparison
            if ramp:
                passing = [r["offered_rate"] for r in results if passes(r)]
                saturation = max(passing) if passing else 0.0
                summary["saturation_rate"] = saturation
                if saturation:
                    half = await run_phase(
                        clients,
                        senders,
                        rooms,
                        stats,
                        meter,
                        saturation / 2,
                        seconds,
                        f"{name} @half saturation",
                        args.mix,
                    )
                    summary["half_saturation"] = half
            summary["server_rss_mb"] = round(rss_bytes(servers.workers()) / 2**20, 1)
            await close_all(clients)
            if rest:
                rest.client.close()
            return summary
        finally:
            servers.stop()

    async def connect(self, sockets: int) -> dict:
        """Connection set-up (issue 15): how many new authenticated sockets a second the servers
        take, `sockets` users (rooms of 10) opening theirs at once with `--concurrency` handshakes
        in flight, each counted at session.ready. Three times: through the ticket path (its REST
        request included), with the JWT in the handshake (native clients), then with session
        cookies; all sockets close between them (the servers' CPU per close measured too). Then
        the floor (`bare`): the same sockets against an app that only accepts (bench/bare.py),
        and each path's rate as a share of it (`of_bare`)."""
        args = self.args
        users, rooms, rooms_of = await self.topology("connect", sockets, 10)
        cookies = await asyncio.to_thread(sessions_for, users)
        stats = Stats()
        result: dict = {"sockets": sockets, "rooms_per_user": 1, "concurrency": args.concurrency}

        async def phase(servers: Servers, path: str, rooms_of: dict[int, list[str]]) -> None:
            await settled(servers)
            meter = self.meter(servers)
            ready: list[float] = []
            meter.start()
            started = time.monotonic()
            clients = await connect_all(
                servers.base,
                users,
                rooms_of,
                stats,
                f"connect ({path})",
                cookies=cookies if path in ("cookie", "bare") else None,
                bearer=path == "bearer",
                concurrency=args.concurrency,
                ready_ms=ready,
            )
            seconds = time.monotonic() - started
            cpu = meter.stop()
            ordered = sorted(int(ms * 1e6) for ms in ready)
            result[path] = {
                "connects_per_s": round(sockets / seconds, 1),
                "seconds": round(seconds, 2),
                "ready_ms": {"p50": round(percentile(ordered, 50), 1), "p99": round(percentile(ordered, 99), 1)},
                "cpu_percent": cpu,
                "server_cpu_ms_per_connect": round(cpu["servers"] * 10 * seconds / sockets, 3),
            }
            # Then the closes, until the servers are idle again: their CPU per socket closed.
            meter = self.meter(servers)
            meter.start()
            started = time.monotonic()
            await close_all(clients)
            await settled(servers)
            closing = time.monotonic() - started
            cpu = meter.stop()
            result[path]["server_cpu_ms_per_close"] = round(cpu["servers"] * 10 * closing / sockets, 3)
            log(f"connect ({path}): {result[path]}")

        with few_collections():  # the generator's heap of sockets is no pass of its collector
            servers = Servers(args.workers, args.server)
            try:
                warm_users = users[: args.workers * 4]  # imports and first queries in every worker
                await close_all(await connect_all(servers.base, warm_users, rooms_of, stats, "connect warm-up"))
                for path in ("ticket", "bearer", "cookie"):
                    await phase(servers, path, rooms_of)
            finally:
                servers.stop()
            servers = Servers(args.workers, args.server, app="bench.bare:app")
            try:
                await phase(servers, "bare", collections.defaultdict(list))  # no rooms to follow
            finally:
                servers.stop()
        bare = result["bare"]["connects_per_s"]
        paths = ("ticket", "bearer", "cookie")
        result["of_bare"] = {path: round(result[path]["connects_per_s"] / bare, 3) for path in paths}
        result["errors"] = dict(stats.errors)
        log(f"connect: each path's rate as a share of the bare app's: {result['of_bare']}")
        return result

    async def sse(self, sockets: int, rate: float, seconds: float) -> dict:
        """Chat with half the clients on Server-Sent Events (issue 15): `sockets` users in rooms of
        10, every other one reading `GET /api/v1/events/` with its session cookie, the rest on
        sockets, which send (`rate` msg/s for `seconds`). Reported: delivery latency to the SSE
        clients against the socket clients of the same run, loss over both, and the workers' memory
        per SSE stream (RSS after the streams open, against before)."""
        args = self.args
        users, rooms, rooms_of = await self.topology("sse", sockets, 10)
        cookies = await asyncio.to_thread(sessions_for, users)
        servers = Servers(args.workers, args.server)
        stats = Stats()
        streams: list[SseClient] = []
        try:
            on_socket, on_sse = users[0::2], users[1::2]
            socket_clients = await connect_all(
                servers.base, on_socket, rooms_of, stats, "sse: sockets", cookies=cookies, concurrency=args.concurrency
            )
            await asyncio.sleep(1)
            baseline = rss_bytes(servers.workers())
            semaphore = asyncio.Semaphore(args.concurrency)

            async def open_stream(user: User) -> None:
                async with semaphore:
                    client = SseClient(stats, rooms_of[user.pk])
                    await client.open(servers.base, cookies[user.pk])
                    streams.append(client)
                    await asyncio.wait_for(client.ready, 60)

            await asyncio.gather(*(open_stream(user) for user in on_sse))
            await asyncio.sleep(2)
            per_stream_kb = (rss_bytes(servers.workers()) - baseline) / 1024 / len(on_sse)
            log(f"sse: {len(streams)} event streams open, {per_stream_kb:.1f} KB each")
            clients: list[Client] = [*socket_clients, *streams]
            senders = [(client, client.rooms[0]) for client in socket_clients]
            meter = self.meter(servers)
            await run_phase(clients, senders, rooms, stats, meter, max(1.0, min(rate / 4, 200.0)), 2.0, "sse warm-up")
            for client in clients:
                client.own_latencies = []
            result = await run_phase(clients, senders, rooms, stats, meter, rate, seconds, f"sse @{rate:.0f}/s")

            def latency(group: list) -> dict:
                ordered = sorted(ns for client in group for ns in client.own_latencies)
                return {"deliveries": len(ordered)} | {f"p{p}": round(percentile(ordered, p), 2) for p in (50, 95, 99)}

            result |= {
                "sockets": len(socket_clients),
                "sse_streams": len(streams),
                "socket_latency_ms": latency(socket_clients),
                "sse_latency_ms": latency(streams),
                "server_rss_kb_per_sse_stream": round(per_stream_kb, 1),
            }
            log(f"sse: socket clients {result['socket_latency_ms']}, SSE clients {result['sse_latency_ms']}")
            await close_all(socket_clients)
            return result
        finally:
            for stream in streams:
                stream.close()
            servers.stop()

    async def storm(self, sockets: int) -> dict:
        """Reconnect storms (issue 15): `sockets` browsers connected, chatting at `--rate` msg/s;
        the server processes are restarted, one after the other (rolling), then all at once. Each
        browser reconnects by itself (full-jitter back-off, as the web client) and syncs its rooms
        from its own numbers. Reported per restart: how long until every browser was back and
        caught up, the session.ready rate curve, and anything lost or duplicated (every browser's
        numbers against PostgreSQL at the end)."""
        args = self.args
        users, rooms, rooms_of = await self.topology("storm", sockets, 10)
        cookies = await asyncio.to_thread(sessions_for, users)
        servers = Servers(args.workers, args.server)
        stats = Stats()
        readies: list[float] = []
        browsers = [Browser(servers.base, cookies[user.pk], rooms_of[user.pk], stats, readies) for user in users]
        result: dict = {"sockets": sockets, "rate": args.rate or 100.0}
        sending = True

        async def chat() -> None:  # an open-loop trickle from whoever is connected
            rate = args.rate or 100.0
            pick = random.Random(3).choice
            while sending:
                await asyncio.sleep(1 / rate)
                browser = pick(browsers)
                if browser.socket is not None and browser.socket.transport is not None:
                    browser.socket.send_message(browser.rooms[0], time.monotonic_ns(), "storm")

        semaphore = asyncio.Semaphore(args.concurrency)

        async def first_connect(browser: Browser) -> None:
            async with semaphore:
                await browser.connect()
                if browser.socket is not None:
                    await asyncio.wait_for(browser.socket.ready, 60)

        try:
            started = time.monotonic()
            await asyncio.gather(*(first_connect(browser) for browser in browsers))
            log(f"storm: {sockets} browsers connected in {time.monotonic() - started:.1f}s")
            # 10,000 browsers are 10,000 processes, not one heap: the collector's full passes over
            # them (0.6-0.7 s each, measured) would be stalls of this generator, not of the servers.
            with few_collections():
                chatter = asyncio.ensure_future(chat())
                for kind in ("rolling", "all at once"):
                    await asyncio.sleep(3)
                    for browser in browsers:
                        browser.back_after.clear()
                        browser.failures.clear()
                        browser.parts.clear()
                    meter = self.meter(servers)
                    meter.start()
                    stalls = LoopStalls()
                    stalls.start()
                    cut = time.monotonic()
                    drops = {id(b): b.drops for b in browsers}
                    workers = servers.workers()
                    names = {worker.pid: worker_name(worker) for worker in workers}
                    for index, worker in enumerate(workers):
                        worker.send_signal(signal.SIGKILL)  # a crash or a deploy's kill: no goodbye
                        if kind == "rolling" and index + 1 < len(workers):
                            await wait_for_worker(servers, names[worker.pid])
                    deadline = time.monotonic() + 180

                    def back(browser: Browser, drops: dict[int, int] = drops) -> bool:
                        """Dropped since the cut, then back and caught up."""
                        return (
                            browser.drops > drops[id(browser)]
                            and browser.dropped_at is None
                            and browser.socket is not None
                        )

                    while time.monotonic() < deadline and not all(back(b) for b in browsers):
                        await asyncio.sleep(0.1)
                    times = sorted(seconds for b in browsers for seconds in b.back_after)
                    cpu = meter.stop()
                    result[kind] = {
                        "drops": sum(b.drops - drops[id(b)] for b in browsers),
                        "all_back_s": round(time.monotonic() - cut, 2) if all(back(b) for b in browsers) else None,
                        "back_s": {
                            "p50": round(times[len(times) // 2], 2) if times else None,
                            "p99": round(times[int(len(times) * 0.99)], 2) if times else None,
                        },
                        "still_out": sum(1 for b in browsers if not back(b)),
                        "still_out_states": stuck_states([b for b in browsers if not back(b)]),
                        "ready_per_half_second": rate_curve(readies, cut),
                        "cpu_percent": cpu,
                        "generator_stall_max_s": stalls.stop(),
                        "generator_gc_pass_max_s": round(stalls.gc_worst, 2),
                        "failed_attempts": dict(sum((b.failures for b in browsers), collections.Counter())),
                        "back_parts_s": back_parts([part for b in browsers for part in b.parts]),
                    }
                    log(f"storm ({kind}): {result[kind]}")
                sending = False
                await chatter
            after = await wait_for_deliveries(browsers, rooms, {})  # type: ignore[arg-type]
            result["lost"] = sum(
                len(track.missing) + max(0, after[room] - track.last)
                for b in browsers
                for room, track in b.tracks.items()
            )
            result["duplicates"] = stats.duplicates
            result["errors"] = dict(stats.errors)
            for browser in browsers:
                browser.stopping = True
            await close_all([b.socket for b in browsers if b.socket is not None])
            return result
        finally:
            sending = False
            servers.stop()

    async def connections(self, sockets: int, idle_seconds: float) -> dict:
        args = self.args
        users, rooms, rooms_of = await self.topology("connections", sockets, 10)
        servers = Servers(args.workers, args.server)
        stats = Stats()
        try:
            # Warm every worker up (imports, first queries) before taking the baseline RSS.
            warm_users = users[: args.workers * 4]
            warm = await connect_all(servers.base, warm_users, rooms_of, stats, "connections warm-up")
            await close_all(warm)
            await asyncio.sleep(1)
            # Past GENERATOR_SOCKETS, session cookies: the ticket path's REST request per socket
            # would make the connecting take most of the run (the idle figures are the point).
            cookies = await asyncio.to_thread(sessions_for, users) if sockets > GENERATOR_SOCKETS else None
            baseline = rss_bytes(servers.workers())
            started = time.monotonic()
            clients: list[Client] = []
            children: list[asyncio.subprocess.Process] = []
            if sockets > GENERATOR_SOCKETS:
                with tempfile.TemporaryDirectory(prefix="parley-generators-") as spool:
                    children = await open_in_children(servers.base, users, rooms_of, cookies or {}, Path(spool))
            else:
                clients = await connect_all(servers.base, users, rooms_of, stats, "connections", cookies=cookies)
            connect_seconds = time.monotonic() - started
            await asyncio.sleep(2)
            loaded = rss_bytes(servers.workers())
            meter = self.meter(servers)
            log(f"connections: {sockets} sockets open in {connect_seconds:.1f}s; idle for {idle_seconds:.0f}s")
            meter.start()
            await asyncio.sleep(idle_seconds)
            cpu = meter.stop()
            alive = sum(1 for client in clients if not client.transport.is_disconnected)
            alive += await alive_in_children(children)
            result = {
                "sockets": sockets,
                "generator_processes": max(1, len(children)),
                "connected": alive,
                "connect_seconds": round(connect_seconds, 1),
                "connects_per_s": round(sockets / connect_seconds, 1),
                "idle_seconds": idle_seconds,
                "server_rss_mb_before": round(baseline / 2**20, 1),
                "server_rss_mb_after": round(loaded / 2**20, 1),
                "server_rss_kb_per_socket": round((loaded - baseline) / 1024 / sockets, 1),
                "idle_cpu_percent": cpu,
                "errors": dict(stats.errors),
                "sockets_closed": stats.closed,
            }
            log(f"connections: {alive}/{sockets} alive, {result['server_rss_kb_per_socket']} KB/socket, idle cpu {cpu}")
            await close_all(clients)
            return result
        finally:
            servers.stop()


async def idle_child(spec: Path) -> None:
    """A helper process of `connections` past GENERATOR_SOCKETS: opens the sockets `spec` lists
    (base URL, source address, a session cookie and a room per socket), says "connected N" on
    stdout, keeps them (heartbeats every 30 s) until a line on stdin, says "alive N", closes them."""
    plan = json.loads(spec.read_text())
    base, source = plan["base"], plan["source"]
    stats = Stats()
    semaphore = asyncio.Semaphore(CONNECT_CONCURRENCY)
    clients: list[Client] = []

    async def open_one(cookie: str, room: str) -> None:
        async with semaphore:
            headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}", "Origin": base}
            _, client = await ws_connect(
                lambda: Client(stats, [room]),
                base.replace("http://", "ws://") + "/ws/",
                websocket_handshake_timeout=120,
                extra_headers=headers,
                local_addr=(source, 0),
            )
            await asyncio.wait_for(client.ready, 120)
            clients.append(client)

    await asyncio.gather(*(open_one(cookie, room) for cookie, room in plan["sockets"]))
    print(f"connected {len(clients)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    print(f"alive {sum(1 for client in clients if not client.transport.is_disconnected)}", flush=True)
    await close_all(clients)


async def open_in_children(
    base: str, users: list[User], rooms_of: dict[int, list[str]], cookies: dict[int, str], spool: Path
) -> list[asyncio.subprocess.Process]:
    """Open every user's socket from helper processes of GENERATOR_SOCKETS each (one 127.0.0.x
    source address each: under its ephemeral ports), once all of them say they are connected."""
    children = []
    for index, start in enumerate(range(0, len(users), GENERATOR_SOCKETS)):
        spec = spool / f"generator-{index}.json"
        chunk = users[start : start + GENERATOR_SOCKETS]
        sockets = [[cookies[user.pk], rooms_of[user.pk][0]] for user in chunk]
        spec.write_text(json.dumps({"base": base, "source": f"127.0.0.{2 + index}", "sockets": sockets}))
        children.append(
            await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--idle-child", str(spec), stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
        )
    for child in children:
        while not (line := await asyncio.wait_for(child.stdout.readline(), 1200)).startswith(b"connected"):  # type: ignore[union-attr]
            if not line:
                raise RuntimeError("a generator process ended before its sockets were open")
    return children


async def alive_in_children(children: list[asyncio.subprocess.Process]) -> int:
    """How many of the children's sockets are still open; then they close them and end."""
    alive = 0
    for child in children:
        child.stdin.write(b"count\n")  # type: ignore[union-attr]
        while not (line := await asyncio.wait_for(child.stdout.readline(), 120)).startswith(b"alive"):  # type: ignore[union-attr]
            if not line:
                raise RuntimeError("a generator process ended early")
        alive += int(line.split()[1])
    for child in children:
        await asyncio.wait_for(child.wait(), 120)
    return alive


# ---------------------------------------------------------------------------------------------
# Report


def write_report(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    chart = None
    ramp = results["scenarios"].get("ramp")
    if ramp:
        chart = out / "latency.png"
        plot_ramp(ramp, chart)
    lines = [
        "# Load benchmark",
        "",
        f"Run {results['started']} on {results['machine']}; command: `{results['command']}`.",
        f"Server: `{results['server']}` with {results['workers']} worker processes; PostgreSQL "
        f"({results['postgres']}); Redis; the load generator in one process; all on one machine.",
        "",
        "| scenario | sockets | offered msg/s | persisted msg/s | deliveries/s | p50 ms | p95 ms | p99 ms | max ms "
        "| lost | dup | reordered | CPU % (servers / Redis / PostgreSQL / generator) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in ("chat", "fanout", "ramp"):
        scenario = results["scenarios"].get(name)
        if not scenario:
            continue
        rows = list(scenario["steps"])
        if name == "ramp" and scenario.get("half_saturation"):
            rows.append(scenario["half_saturation"] | {"label": "half saturation"})
        for step in rows:
            cpu = step["cpu_percent"]
            label = f"{name} ({step['label']})" if "label" in step else name
            lines.append(
                f"| {label} | {scenario['sockets']} | {step['offered_rate']:.0f} | {step['persisted_per_s']:.0f} "
                f"| {step['deliveries_per_s']:.0f} | {step['latency_ms']['p50']} | {step['latency_ms']['p95']} "
                f"| {step['latency_ms']['p99']} | {step['latency_ms']['max']} | {step['lost']} | {step['duplicates']} "
                f"| {step['reordered']} | {cpu_cell(cpu)} |"
            )
    comparison = (results["scenarios"].get("chat") or {}).get("mix_comparison")
    if comparison:
        plain, mixed, ratio = comparison["plain"], comparison["mix"], comparison["mix_over_plain"]
        lines += [
            "",
            "Mix against plain chat (medians of the alternating phases): "
            f"p50 {plain['p50_ms']} -> {mixed['p50_ms']} ms "
            f"(x{ratio.get('p50_ms')}), p99 {plain['p99_ms']} -> {mixed['p99_ms']} ms (x{ratio.get('p99_ms')}), "
            "servers + Redis + PostgreSQL CPU per message "
            f"{plain['cpu_ms_per_message']} -> {mixed['cpu_ms_per_message']} ms "
            f"(x{ratio.get('cpu_ms_per_message')}).",
        ]
    if ramp:
        best = f"**{ramp['saturation_rate']:.0f} msg/s**"
        lines += ["", f"Highest offered rate with p99 < {P99_TARGET_MS:.0f} ms and no loss: {best}."]
    connections = results["scenarios"].get("connections")
    if connections:
        cpu = connections["idle_cpu_percent"]
        lines += [
            "",
            f"Connections: {connections['connected']}/{connections['sockets']} sockets open "
            f"({connections['connects_per_s']} connects/s through the ticket path); server RSS "
            f"{connections['server_rss_mb_before']} MB -> {connections['server_rss_mb_after']} MB = "
            f"**{connections['server_rss_kb_per_socket']} KB per socket**; CPU while idle with heartbeats "
            f"(servers / Redis / PostgreSQL / generator): {cpu['servers']} / {cpu['redis']} / {cpu['postgres']} "
            f"/ {cpu['load_generator']} % of one core.",
        ]
    connect = results["scenarios"].get("connect")
    if connect:
        lines += [
            "",
            f"Connection set-up: {connect['sockets']} sockets opening at once, {connect['concurrency']} in flight:",
            "",
            "| path | connects/s | ready ms p50 / p99 | server CPU ms per connect "
            "| CPU % (servers / Redis / PostgreSQL / generator) |",
            "|---|---:|---:|---:|---|",
        ]
        for path in ("ticket", "bearer", "cookie", "bare"):
            if path not in connect:
                continue
            row = connect[path]
            lines.append(
                f"| {path} | **{row['connects_per_s']}** | {row['ready_ms']['p50']} / {row['ready_ms']['p99']} "
                f"| {row['server_cpu_ms_per_connect']} | {cpu_cell(row['cpu_percent'])} |"
            )
        lines += [
            "",
            "`bare` is the floor: the same sockets against an app that only accepts (bench/bare.py), served "
            "by uvicorn with production's options. Each path as a share of it: "
            + ", ".join(f"{path} {share}" for path, share in connect["of_bare"].items())
            + ".",
        ]
    sse = results["scenarios"].get("sse")
    if sse:
        lines += [
            "",
            f"Half the clients on Server-Sent Events: {sse['sockets']} sockets (they send) and {sse['sse_streams']} "
            f"event streams, {sse['offered_rate']:.0f} msg/s; lost {sse['lost']}, duplicated {sse['duplicates']}; "
            f"server memory {sse['server_rss_kb_per_sse_stream']} KB per stream:",
            "",
            "| clients | deliveries | p50 ms | p95 ms | p99 ms |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, key in (("socket", "socket_latency_ms"), ("SSE", "sse_latency_ms")):
            row = sse[key]
            lines.append(f"| {label} | {row['deliveries']} | {row['p50']} | {row['p95']} | {row['p99']} |")
    storm = results["scenarios"].get("storm")
    if storm:
        lines += [
            "",
            f"Reconnect storm: {storm['sockets']} browsers chatting at {storm['rate']:.0f} msg/s, the server "
            f"processes killed; lost {storm['lost']}, duplicated {storm['duplicates']}:",
            "",
            "| restart | drops | all back and caught up, s | back after drop p50 / p99, s | still out "
            "| generator's longest stall, s |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for kind in ("rolling", "all at once"):
            row = storm[kind]
            lines.append(
                f"| {kind} | {row['drops']} | {row['all_back_s']} | {row['back_s']['p50']} / {row['back_s']['p99']} "
                f"| {row['still_out']} | {row.get('generator_stall_max_s')} |"
            )
    if chart:
        lines += ["", f"![latency vs offered rate]({chart.name})"]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def cpu_cell(cpu: dict) -> str:
    return f"{cpu['servers']} / {cpu['redis']} / {cpu['postgres']} / {cpu['load_generator']}"


def plot_ramp(ramp: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = ramp["steps"]
    rates = [step["offered_rate"] for step in steps]
    figure, axes = plt.subplots(figsize=(7, 4), dpi=110)
    for key, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^-")):
        axes.plot(rates, [max(step["latency_ms"][key], 0.01) for step in steps], style, label=key)
    axes.axhline(P99_TARGET_MS, color="grey", linestyle="--", linewidth=1, label="100 ms")
    axes.set_yscale("log")
    axes.set_xlabel("offered rate (messages/s), 10 sockets per room")
    axes.set_ylabel("send -> delivery latency (ms)")
    axes.set_title(f"Parley chat latency vs offered rate ({ramp['sockets']} sockets)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


# ---------------------------------------------------------------------------------------------


SIZES = {
    # name: sockets, room size, rates, seconds per rate
    "full": {
        "chat": (1000, 10, [1500.0], 20.0),
        "fanout": (1000, 1000, [50.0], 20.0),
        "connections": (10000, 150.0),  # longer than the server's 120 s silence limit
        "connect": 4000,
        "storm": 10000,
        "sse": (1000, [1000.0], 15.0),
        "ramp": (1000, 10, [250.0, 500.0, 750.0, 1000.0, 1250.0, 1500.0, 2000.0, 3000.0], 10.0),
    },
    "smoke": {
        "chat": (40, 10, [40.0], 2.0),
        "fanout": (30, 30, [10.0], 2.0),
        "connections": (60, 2.0),
        "connect": 40,
        "storm": 60,
        "sse": (40, [40.0], 2.0),
        "ramp": (40, 10, [20.0, 40.0], 2.0),
    },
}


async def main_async(args: argparse.Namespace) -> dict:
    size = SIZES["smoke" if args.smoke else "full"]
    bench = Bench(args)
    # The 10,000-socket scenario goes last: the latency scenarios should not run in a generator
    # (and against PostgreSQL and Redis) still carrying what 10,000 sockets left behind.
    # The storm restarts the servers twice (a minute or more even at the smoke size): not in --smoke.
    everything = ["chat", "fanout", "ramp", "sse", "connect", "connections"] + ([] if args.smoke else ["storm"])
    scenarios = everything if args.scenario == "all" else [args.scenario]
    results: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} cores, {round(psutil.virtual_memory().total / 2**30)} GiB",
        "command": " ".join(["bench/load.py", *sys.argv[1:]]),
        "server": args.server,
        "workers": args.workers,
        "postgres": await asyncio.to_thread(postgres_durability),
        "scenarios": {},
    }
    for name in scenarios:
        gc.collect()  # what the previous scenario left, before this one's timings
        log(f"--- {name}")
        if name == "connect":
            results["scenarios"][name] = await bench.connect(args.sockets or size["connect"])
            continue
        if name == "storm":
            results["scenarios"][name] = await bench.storm(args.sockets or size["storm"])
            continue
        if name == "sse":
            sockets, rates, seconds = size["sse"]
            results["scenarios"][name] = await bench.sse(
                args.sockets or sockets, args.rate or rates[0], args.seconds or seconds
            )
            continue
        if name == "connections":
            sockets, idle = size["connections"]
            results["scenarios"][name] = await bench.connections(args.sockets or sockets, args.seconds or idle)
            continue
        sockets, room_size, rates, seconds = size[name]
        if args.rate and name != "ramp":
            rates = [args.rate]
        if args.rates and name == "ramp":
            rates = [float(rate) for rate in args.rates.split(",")]
        results["scenarios"][name] = await bench.messaging(
            name, args.sockets or sockets, room_size, rates, args.seconds or seconds, ramp=name == "ramp"
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario", choices=["all", "chat", "fanout", "connections", "ramp", "connect", "storm", "sse"], default="all"
    )
    parser.add_argument(
        "--concurrency", type=int, default=256, help="connect: handshakes in flight (the ticket request included)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds each (CI)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="ASGI worker processes")
    parser.add_argument("--server", default="uvicorn", help="ASGI server behind scripts/serve.py (uvicorn, daphne)")
    parser.add_argument("--rate", type=float, help="offered messages/s (chat, fanout)")
    parser.add_argument("--rates", help="comma-separated offered rates for the ramp")
    parser.add_argument("--sockets", type=int, help="override the scenario's socket count")
    parser.add_argument("--seconds", type=float, help="override the seconds per step (idle time for connections)")
    parser.add_argument(
        "--mix", type=float, default=0.0, help="fraction of sends: thread replies naming a member, each with a reaction"
    )
    parser.add_argument(
        "--mix-parts",
        default="reply,mention,reaction",
        help="what a --mix message carries, comma-separated: reply, mention, reaction (to tell which costs what)",
    )
    parser.add_argument(
        "--alternate",
        type=int,
        default=0,
        help="with --mix, chat: N plain and N mixed phases in turn in one run, compared (issue 16)",
    )
    parser.add_argument(
        "--rest-burst",
        type=int,
        default=0,
        help="chat, fanout: N GET /api/v1/rooms/ at once every second of each phase (sync requests beside the sockets)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--idle-child", type=Path, help=argparse.SUPPRESS)  # connections' helper processes
    args = parser.parse_args()
    if args.alternate and not (args.mix and args.scenario == "chat"):
        parser.error("--alternate compares plain chat with --mix: it needs --scenario chat and --mix")
    MIX_PARTS.clear()
    MIX_PARTS.update(part for part in args.mix_parts.split(",") if part)
    if not MIX_PARTS <= {"reply", "mention", "reaction"}:
        parser.error(f"--mix-parts: reply, mention or reaction, not {args.mix_parts!r}")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.idle_child:
        uvloop.run(idle_child(args.idle_child))
        return 0
    for step in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"]):
        subprocess.run([sys.executable, "manage.py", *step], cwd=ROOT, check=True)
    results = uvloop.run(main_async(args))
    write_report(results, args.out)
    log(f"wrote {args.out / 'results.json'} and {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
