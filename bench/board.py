"""Boards benchmark: the real stack with real WebSocket clients editing boards.

    make bench-board                                    # every scenario at full size (a few minutes)
    make bench-board ARGS="--scenario editors"          # one of: editors, boards, compaction, export
    make bench-board ARGS="--smoke --out /tmp/smoke"    # tiny sizes, seconds (what the smoke test runs)

Like bench/load.py (whose servers, seeding, ticket sign-in and process meters it reuses): Parley's
production entry point (scripts/serve.py, N ASGI workers, DEBUG off) against DATABASE_URL /
REDIS_URL, which `make bench-board` provides as throwaway PostgreSQL with durable settings (fsync
and synchronous_commit on) and Redis; every client signs in through a JWT and a ws-ticket. The
clients are pycrdt documents making real Yjs v1 updates.

- editors: 50 editors on one board. Each moves its cursor at 20 Hz (board.awareness) and its own
  element at 5 Hz (board.update), open loop (each frame is due at a fixed time whatever the server
  does, and latency is measured from that due time). Measures update propagation (due -> the
  `board.update` on every other socket) and cursor propagation (due -> `board.awareness`), acks,
  loss (every socket must see every number of the board's log, its own through acks), duplicates,
  and convergence (each client's document, rebuilt from what it received, renders the same as the
  server's REST rendering).
- boards: 1,000 boards x 5 editors (one room of 5 per board). Server memory per open socket and per
  open board (RSS of the workers before and after the sockets connect and join), then saturation:
  every editor sends its next update as soon as the previous is acked (closed loop), and the
  persisted updates/s is read from PostgreSQL.
- compaction: a board with 100,000 updates (1,000 elements made by 10 clients, then moved) written
  to the log, then boards.compaction.compact_board: time, snapshot size, checkpoints; then the time
  to load the board and to replay a state in the middle.
- export: a board with 10,000 elements; GET /api/v1/boards/{id}/export/ over HTTP (and the board's
  GET for comparison), sequential samples.

Writes board.json and board.md into --out (default bench/results/). Every loop is bounded.
"""

import argparse
import asyncio
import base64
import gc
import http.client
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load import (  # noqa: E402 (importing it sets Django up with the benchmark's environment)
    ROOT,
    CpuMeter,
    Servers,
    Tickets,
    log,
    postgres_durability,
    rss_bytes,
    seed,
    service_processes,
)

# isort: split

import orjson  # noqa: E402
import psutil  # noqa: E402
import uvloop  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from picows import WSListener, WSMsgType, ws_connect  # noqa: E402
from pycrdt import Doc, Map  # noqa: E402
from rest_framework_simplejwt.tokens import AccessToken  # noqa: E402

from accounts.models import User  # noqa: E402
from boards import compaction, crdt  # noqa: E402
from boards.models import Board, BoardUpdate  # noqa: E402

SIZES = {
    "full": {
        "editors": {"editors": 50, "seconds": 20.0, "cursor_hz": 20.0, "move_hz": 5.0},
        "boards": {"boards": 1000, "editors": 5, "seconds": 20.0},
        "compaction": {"updates": 100_000, "elements": 1000, "clients": 10},
        "export": {"elements": 10_000, "samples": 20},
    },
    "smoke": {
        "editors": {"editors": 3, "seconds": 2.0, "cursor_hz": 20.0, "move_hz": 5.0},
        "boards": {"boards": 4, "editors": 2, "seconds": 2.0},
        "compaction": {"updates": 2000, "elements": 50, "clients": 3},
        "export": {"elements": 200, "samples": 3},
    },
}
DRAIN_SECONDS = 15.0
HEARTBEAT_SECONDS = 30
BACKLOG_SECONDS = 180.0  # after the run, how long a server that fell behind may take to catch up


def ms(values_ns: list[int]) -> dict:
    """p50/p95/p99/max in milliseconds of nanosecond samples."""
    if not values_ns:
        return {"samples": 0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values_ns)

    def at(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] / 1e6, 2)

    return {"samples": len(ordered), "p50": at(50), "p95": at(95), "p99": at(99), "max": round(ordered[-1] / 1e6, 2)}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ---------------------------------------------------------------------------------------------
# An editor: a socket and a pycrdt document


class Shared:
    """What every editor of one run shares (one process, one clock)."""

    def __init__(self) -> None:
        self.sent_updates: dict[str, int] = {}  # client_update_id -> due ns
        self.update_latencies: list[int] = []
        self.ack_latencies: list[int] = []
        self.cursor_latencies: list[int] = []
        self.cursors_received = 0
        # Awareness frames in (a board.awareness, or a board.awareness.batch of several states),
        # and when the first and the last came: frames/s across the editors.
        self.awareness_frames = 0
        self.awareness_span_ns = [0, 0]
        self.errors: dict[str, int] = {}
        self.refused = 0  # updates refused rate_limited in the saturation loop (then sent again)
        self.closed = 0


class Editor(WSListener):
    def __init__(self, shared: Shared, board: str, client_id: int) -> None:
        self.shared = shared
        self.board = board
        self.doc: Doc = Doc(client_id=client_id)
        self.elements = self.doc.get("elements", type=Map)
        self.made: list[bytes] = []
        self.doc.observe(lambda event: self.made.append(event.update))
        self.element = f"el-{client_id}"
        self.transport = None
        self.beat_timer: asyncio.TimerHandle | None = None
        self.ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self.joined: asyncio.Future = asyncio.get_running_loop().create_future()
        self.initial: bytes = b""
        self.join_sequence = 0
        self.received: list[tuple[int, str]] = []  # (sequence, base64 update) from others
        self.numbers: set[int] = set()  # every number this socket saw: others' and its own acks
        self.duplicates = 0
        self.acked = 0
        self.acks: asyncio.Queue[int] | None = None  # closed-loop driving waits on these
        self.cursor_seq = 0
        self.session_id = ""

    # -- frames in
    def on_ws_connected(self, transport) -> None:
        self.transport = transport
        # Heartbeat every 30 s like the web UI (the server closes sockets silent for 120 s).
        self.beat_timer = asyncio.get_running_loop().call_later(random.uniform(0, HEARTBEAT_SECONDS), self.beat)

    def beat(self) -> None:
        if self.transport is not None and not self.transport.is_disconnected:
            self.send({"type": "heartbeat", "active": True})
            self.beat_timer = asyncio.get_running_loop().call_later(HEARTBEAT_SECONDS, self.beat)

    def on_ws_disconnected(self, transport) -> None:
        if self.beat_timer is not None:
            self.beat_timer.cancel()
        self.shared.closed += 1
        for future in (self.ready, self.joined):
            if not future.done():
                future.set_exception(ConnectionError("closed"))

    def on_ws_frame(self, transport, frame) -> None:
        if frame.msg_type != WSMsgType.TEXT:
            return
        now = time.monotonic_ns()
        data = orjson.loads(frame.get_payload_as_bytes())
        kind = data["type"]
        if kind == "board.update":
            self._number(data["sequence"])
            self.received.append((data["sequence"], data["update"]))
            due = self.shared.sent_updates.get(data["client_update_id"])
            if due is not None:
                self.shared.update_latencies.append(now - due)
        elif kind in ("board.awareness", "board.awareness.batch"):
            shared = self.shared
            shared.awareness_frames += 1
            shared.awareness_span_ns[0] = shared.awareness_span_ns[0] or now
            shared.awareness_span_ns[1] = now
            for entry in data["states"] if kind == "board.awareness.batch" else [data]:
                state = entry.get("state")
                if state and "t" in state:
                    shared.cursor_latencies.append(now - state["t"])
                    shared.cursors_received += 1
        elif kind == "board.update.ack":
            self._number(data["sequence"])
            self.acked += 1
            due = self.shared.sent_updates.get(data["client_update_id"])
            if due is not None:
                self.shared.ack_latencies.append(now - due)
            if self.acks is not None:
                self.acks.put_nowait(data["sequence"])
        elif kind == "board.state":
            self.initial = base64.b64decode(data["update"])
            self.join_sequence = data["sequence"]
            if not self.joined.done():
                self.joined.set_result(None)
        elif kind == "session.ready":
            self.session_id = data.get("session", "")
            if not self.ready.done():
                self.ready.set_result(None)
        elif kind == "error":
            code = data.get("code", "?")
            if code == "rate_limited" and self.acks is not None and data.get("ref"):
                # The saturation loop sends as fast as acks come: over the socket's budget it is
                # told to wait, and sends the same update again then, as a client does.
                self.shared.refused += 1
                self.acks.put_nowait(-max(1, int(data.get("retry_after_ms", 1000))))
                return
            self.shared.errors[code] = self.shared.errors.get(code, 0) + 1
            if self.acks is not None and data.get("ref"):
                self.acks.put_nowait(0)

    def _number(self, number: int) -> None:
        if number in self.numbers:
            self.duplicates += 1
        self.numbers.add(number)

    # -- frames out
    def send(self, frame: dict) -> None:
        self.transport.send(WSMsgType.TEXT, orjson.dumps(frame))

    def join(self) -> None:
        self.send({"type": "board.join", "board": self.board})

    def update(self, due_ns: int, **properties) -> None:
        with self.doc.transaction():
            if self.element in self.elements:
                element = self.elements[self.element]
                for key, value in properties.items():
                    element[key] = value
            else:
                self.elements[self.element] = Map({"type": "rect", "w": 40, "h": 30, "z": self.element, **properties})
        key = str(uuid.uuid4())
        self.shared.sent_updates[key] = due_ns
        self.last_update = {
            "type": "board.update",
            "board": self.board,
            "update": b64(self.made[-1]),
            "client_update_id": key,
        }
        self.send(self.last_update)

    def cursor(self, due_ns: int, x: float, y: float) -> None:
        self.cursor_seq += 1
        state = {
            "cursor": {"x": x, "y": y},
            "selection": [self.element],
            "viewport": {"x": 0, "y": 0, "zoom": 1},
            "name": self.element,
            "colour": "#3366ff",
            "t": due_ns,
        }
        self.send({"type": "board.awareness", "board": self.board, "state": state})

    def rendering(self) -> dict:
        """The board as this client has it: what it joined with, its own updates and everything
        it received, applied to a fresh document."""
        doc: Doc = Doc()
        doc.apply_update(self.initial)
        for update in self.made:
            doc.apply_update(update)
        for _, update in sorted(self.received):
            doc.apply_update(base64.b64decode(update))
        return crdt.render(doc)


async def connect_editors(base: str, users: list[User], boards: list[str], shared: Shared, label: str) -> list[Editor]:
    tickets = Tickets(base)
    ws_base = base.replace("http://", "ws://")
    semaphore = asyncio.Semaphore(64)
    editors: list[Editor | None] = [None] * len(users)
    progress = {"done": 0, "at": time.monotonic()}

    async def open_one(index: int, user: User) -> None:
        async with semaphore:
            token = str(AccessToken.for_user(user))
            _, editor = await ws_connect(
                lambda: Editor(shared, boards[index], client_id=index + 1),
                f"{ws_base}/ws/?ticket={await tickets.ticket(token)}",
                websocket_handshake_timeout=60,
            )
            await asyncio.wait_for(editor.ready, 60)
            editors[index] = editor
            progress["done"] += 1
            if time.monotonic() - progress["at"] > 2:
                progress["at"] = time.monotonic()
                log(f"{label}: {progress['done']}/{len(users)} sockets connected")

    try:
        await asyncio.gather(*(open_one(index, user) for index, user in enumerate(users)))
    finally:
        tickets.close()
    return editors  # type: ignore[return-value]


async def join_all(editors: list[Editor], label: str) -> None:
    for start in range(0, len(editors), 200):
        batch = editors[start : start + 200]
        for editor in batch:
            editor.join()
        await asyncio.wait_for(asyncio.gather(*(e.joined for e in batch)), 120)
    log(f"{label}: {len(editors)} sockets joined their boards")


async def close_all(editors: list[Editor]) -> None:
    for editor in editors:
        if editor.transport is not None and not editor.transport.is_disconnected:
            editor.transport.send_close()
            editor.transport.disconnect()
    await asyncio.sleep(0.5)


def last_sequences(board_ids: list[str]) -> dict[str, int]:
    return {str(pk): last for pk, last in Board.objects.filter(pk__in=board_ids).values_list("pk", "last_sequence")}


async def wait_for_numbers(editors: list[Editor], board_ids: list[str]) -> dict[str, int]:
    """Until every socket has seen every number of its board's log after its join (bounded)."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while True:
        await asyncio.sleep(0.25)
        last = await asyncio.to_thread(last_sequences, board_ids)
        if all(len(e.numbers) >= last[e.board] - e.join_sequence for e in editors) or time.monotonic() > deadline:
            return last


def lost_numbers(editors: list[Editor], last: dict[str, int]) -> int:
    return sum(len(set(range(e.join_sequence + 1, last[e.board] + 1)) - e.numbers) for e in editors)


class Http:
    """A kept-alive HTTP connection with a JWT (REST reads against the servers)."""

    def __init__(self, base: str, user: User) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=60)
        self.token = str(AccessToken.for_user(user))

    def get(self, path: str) -> tuple[int, bytes, float]:
        started = time.perf_counter()
        self.connection.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
        response = self.connection.getresponse()
        body = response.read()
        return response.status, body, time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# Scenarios


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.size = SIZES["smoke" if args.smoke else "full"]
        self.tag = f"k{uuid.uuid4().hex[:6]}"

    def meter(self, servers: Servers) -> CpuMeter:
        from urllib.parse import urlparse

        me = psutil.Process()
        return CpuMeter(
            {
                "servers": lambda: [psutil.Process(servers.process.pid), *servers.workers()],
                "redis": lambda: service_processes(urlparse(settings.REDIS_URL).port, "redis"),
                "postgres": lambda: service_processes(settings.DATABASES["default"]["PORT"], "postgres"),
                "load_generator": lambda: [me],
            }
        )

    def boards_for(self, name: str, boards: int, editors: int) -> tuple[list[User], list[str]]:
        """`boards` rooms of `editors` members, one board each; (users, each user's board)."""
        users, rooms, groups = seed(boards * editors, editors, f"{self.tag}-{name}")
        made = Board.objects.bulk_create(
            [
                Board(room=room, title=f"{name} {i}", created_by=group[0])
                for i, (room, group) in enumerate(zip(rooms, groups, strict=True))
            ]
        )
        board_of = {user.pk: str(board.pk) for board, group in zip(made, groups, strict=True) for user in group}
        return users, [board_of[user.pk] for user in users]

    async def editors(self) -> dict:
        size = self.size["editors"]
        count, seconds = self.args.editors or size["editors"], self.args.seconds or size["seconds"]
        cursor_hz, move_hz = self.args.cursor_hz or size["cursor_hz"], self.args.move_hz or size["move_hz"]
        users, board_of = await asyncio.to_thread(self.boards_for, "editors", 1, count)
        board = board_of[0]
        servers = Servers(self.args.workers, self.args.server)
        shared = Shared()
        try:
            editors = await connect_editors(servers.base, users, board_of, shared, "editors")
            await join_all(editors, "editors")
            # Each editor makes its element (acked), then the measured run starts.
            for index, editor in enumerate(editors):
                editor.update(time.monotonic_ns(), x=index * 50, y=0)
            deadline = time.monotonic() + 30
            while sum(e.acked for e in editors) < count and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            before = (await asyncio.to_thread(last_sequences, [board]))[board]
            await wait_for_numbers(editors, [board])
            shared.update_latencies.clear()
            shared.ack_latencies.clear()
            meter = self.meter(servers)
            meter.start()
            events: list[tuple[int, int, str]] = []  # (due ns, editor, kind)
            start = time.monotonic_ns() + 100_000_000
            rng = random.Random(11)
            for index in range(count):
                offset = rng.uniform(0, 1e9 / cursor_hz)
                events += [
                    (start + int(offset + k * 1e9 / cursor_hz), index, "c") for k in range(int(seconds * cursor_hz))
                ]
                offset = rng.uniform(0, 1e9 / move_hz)
                events += [(start + int(offset + k * 1e9 / move_hz), index, "m") for k in range(int(seconds * move_hz))]
            events.sort()
            worst_lag = 0
            position = 0
            moves = cursors = 0
            while position < len(events):
                now = time.monotonic_ns()
                due = events[position][0]
                if due > now:
                    await asyncio.sleep(min((due - now) / 1e9, 0.01))
                    continue
                worst_lag = max(worst_lag, now - due)
                while position < len(events) and events[position][0] <= now:
                    due, index, kind = events[position]
                    editor = editors[index]
                    if kind == "c":
                        editor.cursor(due, x=rng.uniform(0, 2000), y=rng.uniform(0, 1000))
                        cursors += 1
                    else:
                        editor.update(due, x=rng.uniform(0, 2000), y=rng.uniform(0, 1000))
                        moves += 1
                    position += 1
                await asyncio.sleep(0)
            cpu = meter.stop()
            # A server that fell behind still holds a backlog: let it finish (bounded) before
            # counting, so that loss and convergence are judged on everything that was sent.
            ended = time.monotonic()
            while time.monotonic() - ended < BACKLOG_SECONDS:
                stored = (await asyncio.to_thread(last_sequences, [board]))[board]
                if stored - before >= moves or shared.errors:
                    break
                await asyncio.sleep(0.25)
            backlog_seconds = time.monotonic() - ended
            last = await wait_for_numbers(editors, [board])
            persisted = last[board] - before
            lost = lost_numbers(editors, last)
            # Convergence: every client's document against the server's rendering.
            http_client = Http(servers.base, users[0])
            status, body, _ = await asyncio.to_thread(http_client.get, f"/api/v1/boards/{board}/")
            server_elements = json.loads(body)["elements"] if status == 200 else None
            renderings = [editor.rendering()["elements"] for editor in editors]
            converged = sum(1 for r in renderings if r == server_elements)
            result = {
                "editors": count,
                "seconds": seconds,
                "cursor_hz": cursor_hz,
                "move_hz": move_hz,
                "updates_sent": moves,
                "updates_persisted": persisted,
                "update_deliveries": len(shared.update_latencies),
                "expected_update_deliveries": moves * (count - 1),
                "update_latency_ms": ms(shared.update_latencies),
                "ack_latency_ms": ms(shared.ack_latencies),
                "cursors_sent": cursors,
                "cursor_deliveries": shared.cursors_received,
                "expected_cursor_deliveries": cursors * (count - 1),
                "cursor_latency_ms": ms(shared.cursor_latencies),
                "awareness_frames": shared.awareness_frames,
                "awareness_frames_per_s": round(
                    shared.awareness_frames / max((span := shared.awareness_span_ns)[1] - span[0], 1) * 1e9
                ),
                "lost_numbers": lost,
                "duplicates": sum(e.duplicates for e in editors),
                "converged": converged,
                "server_elements": len(server_elements or []),
                "errors": dict(shared.errors),
                "sockets_closed": shared.closed,
                "generator_lag_ms": round(worst_lag / 1e6, 1),
                "backlog_seconds": round(backlog_seconds, 1),
                "cpu_percent": cpu,
                "server_rss_mb": round(rss_bytes(servers.workers()) / 2**20, 1),
            }
            log(
                f"editors: {moves} moves -> {persisted} persisted; update p50 {result['update_latency_ms']['p50']} "
                f"p99 {result['update_latency_ms']['p99']} ms; cursor p50 {result['cursor_latency_ms']['p50']} "
                f"p99 {result['cursor_latency_ms']['p99']} ms ({shared.cursors_received}/{cursors * (count - 1)} "
                f"states in {shared.awareness_frames} frames, {result['awareness_frames_per_s']}/s); "
                f"lost {lost}; converged {converged}/{count}; cpu {cpu}"
            )
            await close_all(editors)
            return result
        finally:
            servers.stop()

    async def boards(self) -> dict:
        size = self.size["boards"]
        boards, per_board = size["boards"], size["editors"]
        seconds = self.args.seconds or size["seconds"]
        users, board_of = await asyncio.to_thread(self.boards_for, "boards", boards, per_board)
        board_ids = sorted(set(board_of))
        servers = Servers(self.args.workers, self.args.server)
        shared = Shared()
        try:
            warm = await connect_editors(servers.base, users[: self.args.workers * 4], board_of, shared, "warm-up")
            await close_all(warm)
            await asyncio.sleep(1)
            gc.collect()
            baseline = rss_bytes(servers.workers())
            editors = await connect_editors(servers.base, users, board_of, shared, "boards")
            await asyncio.sleep(2)
            connected = rss_bytes(servers.workers())
            await join_all(editors, "boards")
            for index, editor in enumerate(editors):  # everyone makes its element
                editor.update(time.monotonic_ns(), x=index % 97, y=index % 89)
            deadline = time.monotonic() + 120
            while sum(e.acked for e in editors) < len(editors) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(2)
            joined = rss_bytes(servers.workers())
            # Saturation: closed loop, each editor's next update as soon as the previous is acked.
            shared.ack_latencies.clear()
            shared.update_latencies.clear()
            before = await asyncio.to_thread(last_sequences, board_ids)
            meter = self.meter(servers)
            stop_at = time.monotonic() + seconds
            rng = random.Random(5)

            async def loop_editor(editor: Editor) -> int:
                editor.acks = asyncio.Queue()
                sent = 0
                while time.monotonic() < stop_at:
                    editor.update(time.monotonic_ns(), x=rng.uniform(0, 500), y=rng.uniform(0, 500))
                    sent += 1
                    try:
                        answer = await asyncio.wait_for(editor.acks.get(), 30)
                        while answer < 0:  # rate_limited: wait as told, then the same update again
                            await asyncio.sleep(-answer / 1000)
                            editor.send(editor.last_update)
                            answer = await asyncio.wait_for(editor.acks.get(), 30)
                    except TimeoutError:
                        break
                return sent

            meter.start()
            started = time.monotonic()
            sent = sum(await asyncio.gather(*(loop_editor(e) for e in editors)))
            elapsed = time.monotonic() - started
            cpu = meter.stop()
            after = await wait_for_numbers(editors, board_ids)
            persisted = sum(after[b] - before[b] for b in board_ids)
            result = {
                "boards": boards,
                "editors_per_board": per_board,
                "sockets": len(editors),
                "server_rss_mb_baseline": round(baseline / 2**20, 1),
                "server_rss_mb_connected": round(connected / 2**20, 1),
                "server_rss_mb_joined": round(joined / 2**20, 1),
                "server_kb_per_socket": round((connected - baseline) / 1024 / len(editors), 1),
                "server_kb_per_open_board": round((joined - connected) / 1024 / boards, 1),
                "server_kb_per_editor_total": round((joined - baseline) / 1024 / len(editors), 1),
                "saturation_seconds": round(elapsed, 2),
                "updates_sent": sent,
                "updates_persisted": persisted,
                "persisted_per_s": round(persisted / elapsed, 1),
                "update_deliveries": len(shared.update_latencies),
                "deliveries_per_s": round(len(shared.update_latencies) / elapsed, 1),
                "ack_latency_ms": ms(shared.ack_latencies),
                "update_latency_ms": ms(shared.update_latencies),
                "lost_numbers": lost_numbers(editors, after),
                "duplicates": sum(e.duplicates for e in editors),
                "errors": dict(shared.errors),
                "refused_then_resent": shared.refused,
                "sockets_closed": shared.closed,
                "cpu_percent": cpu,
            }
            log(
                f"boards: {len(editors)} sockets on {boards} boards: {result['server_kb_per_socket']} KB/socket, "
                f"{result['server_kb_per_open_board']} KB/open board; saturation {result['persisted_per_s']} "
                f"updates/s persisted, ack p50 {result['ack_latency_ms']['p50']} p99 {result['ack_latency_ms']['p99']} "
                f"ms, lost {result['lost_numbers']}, cpu {cpu}"
            )
            await close_all(editors)
            return result
        finally:
            servers.stop()

    def compaction(self) -> dict:
        size = self.size["compaction"]
        total, element_count, clients = size["updates"], size["elements"], size["clients"]
        users, board_of = self.boards_for("compaction", 1, 1)
        board = Board.objects.get(pk=board_of[0])
        log(f"compaction: making {total} updates")
        started = time.perf_counter()
        docs = [Doc(client_id=i + 1) for i in range(clients)]
        made: list[bytes] = []
        capturing = [True]  # off while the clients exchange their elements
        for doc in docs:
            doc.observe(lambda event: made.append(event.update) if capturing[0] else None)
        rng = random.Random(3)
        for n in range(total):
            doc = docs[n % clients]
            elements = doc.get("elements", type=Map)
            if n < element_count:
                elements[f"e{n}"] = Map({"type": "rect", "x": n, "y": n, "w": 40, "h": 30, "z": f"a{n:05d}"})
                continue
            if n == element_count:  # everyone has every element before moving them
                capturing[0] = False
                for other in docs:
                    for update in made:
                        other.apply_update(update)
                capturing[0] = True
            element = elements[f"e{rng.randrange(element_count)}"]
            with doc.transaction():
                element["x"] = rng.uniform(0, 5000)
                element["y"] = rng.uniform(0, 5000)
        assert len(made) == total
        generated = time.perf_counter() - started
        now = board.created_at
        for start in range(0, total, 5000):
            BoardUpdate.objects.bulk_create(
                [
                    BoardUpdate(
                        board=board,
                        sequence=n + 1,
                        update=made[n],
                        user=users[0],
                        client_update_id=uuid.uuid4(),
                        created_at=now,
                    )
                    for n in range(start, min(total, start + 5000))
                ]
            )
        log_bytes = sum(len(update) for update in made)
        Board.objects.filter(pk=board.pk).update(last_sequence=total, size=log_bytes)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE boards_boardupdate")
        log(f"compaction: {total} updates ({log_bytes} bytes) stored; compacting")
        started = time.perf_counter()
        loaded_before = compaction.load_document(board.pk)
        load_uncompacted = time.perf_counter() - started
        result_compaction = compaction.compact_board(board.pk)
        assert result_compaction is not None
        started = time.perf_counter()
        loaded = compaction.load_document(board.pk)
        load_after = time.perf_counter() - started
        middle = total // 2 + 499
        started = time.perf_counter()
        replay = compaction.load_document(board.pk, middle)
        replay_seconds = time.perf_counter() - started
        same = crdt.render(loaded.doc) == crdt.render(loaded_before.doc)
        checkpoint_bytes = sum(
            len(bytes(state))
            for state in board.snapshots.exclude(sequence=result_compaction.sequence).values_list("state", flat=True)
        )
        result = {
            "updates": total,
            "elements": element_count,
            "clients": clients,
            "log_bytes": log_bytes,
            "generate_seconds": round(generated, 2),
            "compaction_seconds": round(result_compaction.seconds, 2),
            "snapshot_bytes": result_compaction.snapshot_bytes,
            "checkpoints": len(result_compaction.checkpoints),
            "checkpoint_bytes": checkpoint_bytes,
            "load_seconds_before": round(load_uncompacted, 3),
            "load_seconds_after": round(load_after, 3),
            "replay_seconds_mid": round(replay_seconds, 3),
            "replay_sequence": replay.sequence,
            "same_rendering": same,
        }
        log(
            f"compaction: {total} updates folded in {result['compaction_seconds']} s -> snapshot "
            f"{result['snapshot_bytes']} bytes ({result['checkpoints']} checkpoints, {checkpoint_bytes} bytes); "
            f"load {result['load_seconds_before']} s -> {result['load_seconds_after']} s; same: {same}"
        )
        return result

    async def export(self) -> dict:
        size = self.size["export"]
        count, samples = size["elements"], size["samples"]
        users, board_of = await asyncio.to_thread(self.boards_for, "export", 1, 1)
        board = board_of[0]

        def make() -> int:
            doc: Doc = Doc(client_id=1)
            made: list[bytes] = []
            doc.observe(lambda event: made.append(event.update))
            elements = doc.get("elements", type=Map)
            kinds = ["rect", "ellipse", "diamond", "text", "sticky", "arrow", "pen"]
            for start in range(0, count, 100):  # one update per 100 elements (a paste)
                with doc.transaction():
                    for n in range(start, min(count, start + 100)):
                        kind = kinds[n % len(kinds)]
                        properties = {
                            "type": kind,
                            "x": (n % 100) * 60.5,
                            "y": (n // 100) * 45.25,
                            "w": 50,
                            "h": 40,
                            "angle": 0,
                            "stroke": "#1e1e1e",
                            "fill": "#a5d8ff",
                            "z": f"a{n:05d}",
                            "createdBy": users[0].pk,
                        }
                        if kind in ("text", "sticky"):
                            properties |= {"text": f"note {n}", "fontSize": 16}
                        if kind in ("pen", "arrow"):
                            properties["points"] = [0, 0, 10.5, 4, 20, 12, 31, 9]
                        elements[f"el-{n:05d}"] = Map(properties)
            stored = Board.objects.get(pk=board)
            BoardUpdate.objects.bulk_create(
                [
                    BoardUpdate(board=stored, sequence=i + 1, update=u, user=users[0], client_update_id=uuid.uuid4())
                    for i, u in enumerate(made)
                ]
            )
            Board.objects.filter(pk=board).update(last_sequence=len(made), size=len(doc.get_update()))
            compaction.compact_board(board)
            return len(made)

        updates = await asyncio.to_thread(make)
        servers = Servers(self.args.workers, self.args.server)
        try:
            client = Http(servers.base, users[0])
            timings: dict[str, list[float]] = {"export": [], "get": []}
            sizes = {}
            for path, name in ((f"/api/v1/boards/{board}/export/", "export"), (f"/api/v1/boards/{board}/", "get")):
                for _ in range(samples + 1):  # the first one warms the worker up (imports, connections)
                    status, body, seconds = await asyncio.to_thread(client.get, path)
                    assert status == 200, (status, body[:300])
                    timings[name].append(seconds)
                    sizes[name] = len(body)
                assert len(json.loads(body)["elements"]) == count
            result = {
                "elements": count,
                "updates": updates,
                "samples": samples,
                "export_bytes": sizes["export"],
            }
            for name, values in timings.items():
                first, rest = values[0], sorted(values[1:])
                result[f"{name}_ms"] = {
                    "first": round(first * 1000, 1),
                    "p50": round(statistics.median(rest) * 1000, 1),
                    "min": round(rest[0] * 1000, 1),
                    "max": round(rest[-1] * 1000, 1),
                }
            log(f"export: {count} elements, {sizes['export']} bytes: {result['export_ms']}; GET {result['get_ms']}")
            return result
        finally:
            servers.stop()


# ---------------------------------------------------------------------------------------------
# Report


def write_report(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "board.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Boards benchmark",
        "",
        f"Run {results['started']} on {results['machine']}; command: `{results['command']}`.",
        f"Server: `{results['server']}` with {results['workers']} worker processes; PostgreSQL "
        f"({results['postgres']}); Redis; the load generator in one process; all on one machine.",
        "",
    ]
    scenarios = results["scenarios"]
    if "editors" in scenarios:
        e = scenarios["editors"]
        lines += [
            f"**{e['editors']} editors on one board** ({e['cursor_hz']:.0f} Hz cursors, {e['move_hz']:.0f} Hz moves, "
            f"{e['seconds']:.0f} s): updates p50 {e['update_latency_ms']['p50']} ms, p99 "
            f"{e['update_latency_ms']['p99']} ms ({e['update_deliveries']}/{e['expected_update_deliveries']} "
            f"deliveries); cursors p50 {e['cursor_latency_ms']['p50']} ms, p99 {e['cursor_latency_ms']['p99']} ms "
            f"({e['cursor_deliveries']}/{e['expected_cursor_deliveries']} states delivered in "
            f"{e.get('awareness_frames', '?')} awareness frames, {e.get('awareness_frames_per_s', '?')}/s); acks p50 "
            f"{e['ack_latency_ms']['p50']} ms, p99 {e['ack_latency_ms']['p99']} ms; {e['updates_persisted']} of "
            f"{e['updates_sent']} updates persisted ({e['backlog_seconds']} s of backlog after the run); lost "
            f"{e['lost_numbers']}, duplicates {e['duplicates']}; "
            f"converged {e['converged']}/{e['editors']}; errors {e['errors'] or 'none'}; CPU % {e['cpu_percent']}.",
            "",
        ]
    if "boards" in scenarios:
        b = scenarios["boards"]
        lines += [
            f"**{b['boards']} boards x {b['editors_per_board']} editors** ({b['sockets']} sockets): server RSS "
            f"{b['server_rss_mb_baseline']} -> {b['server_rss_mb_connected']} MB connected -> "
            f"{b['server_rss_mb_joined']} MB joined: {b['server_kb_per_socket']} KB per socket, "
            f"{b['server_kb_per_open_board']} KB per open board (its {b['editors_per_board']} sessions included). "
            f"Saturation (closed loop, {b['saturation_seconds']} s): {b['persisted_per_s']} updates/s persisted, "
            f"{b['deliveries_per_s']} deliveries/s, ack p50 {b['ack_latency_ms']['p50']} ms, p99 "
            f"{b['ack_latency_ms']['p99']} ms; lost {b['lost_numbers']}, errors {b['errors'] or 'none'}; "
            f"CPU % {b['cpu_percent']}.",
            "",
        ]
    if "compaction" in scenarios:
        c = scenarios["compaction"]
        lines += [
            f"**Compaction of {c['updates']} updates** ({c['elements']} elements, {c['log_bytes']} bytes of log): "
            f"{c['compaction_seconds']} s; snapshot {c['snapshot_bytes']} bytes, {c['checkpoints']} checkpoints "
            f"({c['checkpoint_bytes']} bytes); loading the board {c['load_seconds_before']} s before, "
            f"{c['load_seconds_after']} s after; replaying #{c['replay_sequence']}: {c['replay_seconds_mid']} s; "
            f"same rendering: {c['same_rendering']}.",
            "",
        ]
    if "export" in scenarios:
        x = scenarios["export"]
        lines += [
            f"**JSON export of {x['elements']} elements** ({x['export_bytes']} bytes, {x['samples']} samples): "
            f"p50 {x['export_ms']['p50']} ms (min {x['export_ms']['min']}, max {x['export_ms']['max']}, first "
            f"{x['export_ms']['first']}); `GET /boards/{{id}}/` p50 {x['get_ms']['p50']} ms.",
            "",
        ]
    (out / "board.md").write_text("\n".join(lines))


async def main_async(args: argparse.Namespace) -> dict:
    bench = Bench(args)
    scenarios = ["compaction", "export", "editors", "boards"] if args.scenario == "all" else [args.scenario]
    results: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} cores, {round(psutil.virtual_memory().total / 2**30)} GiB",
        "command": " ".join(["bench/board.py", *sys.argv[1:]]),
        "server": args.server,
        "workers": args.workers,
        "postgres": await asyncio.to_thread(postgres_durability),
        "scenarios": {},
    }
    for name in scenarios:
        gc.collect()
        log(f"--- {name}")
        if name == "compaction":
            results["scenarios"][name] = await asyncio.to_thread(bench.compaction)
        else:
            results["scenarios"][name] = await getattr(bench, name)()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["all", "editors", "boards", "compaction", "export"], default="all")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds each")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="ASGI worker processes")
    parser.add_argument("--server", default="uvicorn", help="ASGI server behind scripts/serve.py")
    parser.add_argument("--editors", type=int, help="editors on the one board (editors)")
    parser.add_argument("--seconds", type=float, help="override the seconds of the measured run")
    parser.add_argument("--cursor-hz", type=float, help="cursor moves per second per editor (editors)")
    parser.add_argument("--move-hz", type=float, help="element moves per second per editor (editors)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for step in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"]):
        subprocess.run([sys.executable, "manage.py", *step], cwd=ROOT, check=True)
    results = uvloop.run(main_async(args))
    write_report(results, args.out)
    log(f"wrote {args.out / 'board.json'} and {args.out / 'board.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
