"""Presence and typing propagation latency through the real stack.

    make bench-awareness            # or: scripts/stack.py test -- .venv/bin/python bench/awareness.py

Starts daphne on 127.0.0.1 against DATABASE_URL / REDIS_URL (migrating first), signs users in
through the real ticket path, and measures:

- typing: one user sends `typing` in N rooms; time until the other member's socket gets it;
- presence online: a user's socket opens; time until a room-mate gets `presence: online`;
- presence offline: the socket closes; time until the room-mate gets `presence: offline`.

Timestamps are taken on one machine with one clock (time.perf_counter). Prints a table and writes
bench/results/awareness.json. Every loop is bounded; load goes to 127.0.0.1 only.
"""

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("PARLEY_TESTING", "1")

import django  # noqa: E402

django.setup()

from websockets.asyncio.client import connect  # noqa: E402

from accounts.models import User  # noqa: E402
from accounts.services import ws_ticket_issue  # noqa: E402
from rooms.models import Membership, Room  # noqa: E402
from tests.conftest import free_port, wait_for_port  # noqa: E402
from workspaces.services import default_workspace  # noqa: E402

SAMPLES = int(os.environ.get("SAMPLES", "50"))
TIMEOUT = 5.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict:
    return {
        "samples": len(values),
        "p50_ms": round(statistics.median(values), 2),
        "p95_ms": round(percentile(values, 95), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(max(values), 2),
    }


def setup() -> tuple[User, User, list[str], list[User]]:
    run = uuid.uuid4().hex[:6]
    typist = User.objects.create_user(f"typist-{run}", password=None)
    watcher = User.objects.create_user(f"watcher-{run}", password=None)
    movers = [User.objects.create_user(f"mover-{run}-{i}", password=None) for i in range(SAMPLES)]
    rooms = []
    for i in range(SAMPLES):
        room = Room.objects.create(
            name=f"bench {run} {i}", kind=Room.Kind.PRIVATE, created_by=typist, workspace=default_workspace()
        )
        Membership.objects.bulk_create(
            [Membership(room=room, user=typist, role="owner"), Membership(room=room, user=watcher)]
            + [Membership(room=room, user=movers[i])]
        )
        rooms.append(str(room.pk))
    return typist, watcher, rooms, movers


def ws_url(base: str, user: User) -> str:
    ticket, _ = ws_ticket_issue(user=user)
    return f"{base}/ws/?ticket={ticket}"


async def wait_for(socket, predicate) -> float:
    deadline = time.perf_counter() + TIMEOUT
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=deadline - time.perf_counter()))
        if os.environ.get("BENCH_DEBUG"):
            print(frame["type"], str(frame)[:150], flush=True)
        if predicate(frame):
            return time.perf_counter()


async def measure(base: str, typist: User, watcher: User, rooms: list[str], movers: list[User]) -> dict:
    urls = {user.pk: await asyncio.to_thread(ws_url, base, user) for user in [typist, watcher, *movers]}
    results: dict[str, list[float]] = {"typing": [], "presence_online": [], "presence_offline": []}
    async with connect(urls[watcher.pk]) as watcher_socket, connect(urls[typist.pk]) as typist_socket:
        await wait_for(watcher_socket, lambda f: f["type"] == "session.ready")
        await wait_for(typist_socket, lambda f: f["type"] == "session.ready")
        await asyncio.sleep(0.5)  # let the typist's own presence settle
        for room in rooms:
            start = time.perf_counter()
            await typist_socket.send(json.dumps({"type": "typing", "room": room}))
            end = await wait_for(watcher_socket, lambda f, r=room: f["type"] == "typing" and f["room"] == r)
            results["typing"].append((end - start) * 1000)
        for mover in movers:
            start = time.perf_counter()
            mover_socket = await connect(urls[mover.pk])
            end = await wait_for(
                watcher_socket,
                lambda f, m=mover: f["type"] == "presence" and f["user"]["id"] == m.pk and f["status"] == "online",
            )
            results["presence_online"].append((end - start) * 1000)
            start = time.perf_counter()
            await mover_socket.close()
            end = await wait_for(
                watcher_socket,
                lambda f, m=mover: f["type"] == "presence" and f["user"]["id"] == m.pk and f["status"] == "offline",
            )
            results["presence_offline"].append((end - start) * 1000)
    return {name: summary(values) for name, values in results.items()}


def main() -> int:
    from tests.conftest import server_env  # reads this process's database settings

    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, check=True)
    typist, watcher, rooms, movers = setup()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=ROOT,
        env={**server_env(), "LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=None if os.environ.get("BENCH_DEBUG") else subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server)
        figures = asyncio.run(measure(f"ws://127.0.0.1:{port}", typist, watcher, rooms, movers))
    finally:
        server.terminate()
        server.wait(timeout=15)
    print(f"{'what':<18}{'samples':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, row in figures.items():
        print(f"{name:<18}{row['samples']:>8}{row['p50_ms']:>9}{row['p95_ms']:>9}{row['p99_ms']:>9}{row['max_ms']:>9}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "awareness.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written {out / 'awareness.json'} (targets: presence < 500 ms, typing < 300 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
