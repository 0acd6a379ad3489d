"""What one batch of the socket's writes costs PostgreSQL, by kind (issue 16's mix, docs/performance.md):

    scripts/stack.py bench -- .venv/bin/python bench/mix_batch.py [N]

Runs, one after the other on the event loop's connections (core.asyncdb) and in alternating
blocks of 50, N batches of each kind as messaging.services.awrite_many builds them:

- `plain`: one message (the one statement, in autocommit);
- `reply`: one reply naming a member of the room (the same statement: thread, mention, pending
  notification);
- `shared`: that reply with a reaction to the thread's root riding in its transaction (the rooms'
  lock, the send, the reaction; what a mixed message of `bench/load.py --mix` costs);
- `shared, lock planned`: the same with the rooms' lock sent as plain SQL, planned at every batch
  (as before 2026-12-04), to keep the before/after of docs/performance.md measurable.

Prints the wall time (median, mean) and the CPU of every PostgreSQL process per batch. Run under
`scripts/stack.py bench` (PostgreSQL durable: fsync and synchronous_commit on, as in production);
the statements alone, without sockets, events or notifications. Ratios within one run mean the most.
"""

import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "bench-mix-batch-" + uuid.uuid4().hex * 2)
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("LOG_LEVEL", "WARNING")
subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, check=True)

import django  # noqa: E402

django.setup()

import psutil  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.db import connection  # noqa: E402

from accounts.models import User  # noqa: E402
from core import asyncdb  # noqa: E402
from messaging import services  # noqa: E402
from rooms.models import Membership, Room  # noqa: E402
from workspaces.services import default_workspace  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
BLOCK = 50
ROOMS, MEMBERS = 20, 10
EMOJI = ["👍", "🎉", "👀", "😂", "❤️"]


def seed() -> tuple[list[Room], dict, int]:
    tag = uuid.uuid4().hex[:6]
    password = make_password(None)
    users = User.objects.bulk_create([User(username=f"mix{tag}{i}", password=password) for i in range(ROOMS * MEMBERS)])
    rooms = Room.objects.bulk_create(
        [Room(name=f"mix {i}", kind=Room.Kind.PRIVATE, workspace=default_workspace()) for i in range(ROOMS)]
    )
    Membership.objects.bulk_create(
        [Membership(room=rooms[i // MEMBERS], user=user, role="member") for i, user in enumerate(users)]
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    return rooms, {room.pk: users[i * MEMBERS : (i + 1) * MEMBERS] for i, room in enumerate(rooms)}, pid


def postgres_cpu(postmaster: psutil.Process) -> float:
    """CPU seconds of PostgreSQL's processes (the postmaster's children, as they are now)."""
    return sum(map(cpu_seconds, postmaster.children()))


def cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:  # a backend gone meanwhile
        return 0.0
    return times.user + times.system


async def main() -> None:
    rooms, members, pid = await asyncio.to_thread(seed)
    postmaster = psutil.Process(pid).parent()
    roots: dict = {}
    for room in rooms:  # a thread root per room
        request = {"user": members[room.pk][0], "room_id": room.pk, "content": "root", "client_msg_id": uuid.uuid4()}
        (sent,), _ = await services.awrite_many(sends=[request], reactions=[])
        roots[room.pk] = sent[0].id

    def request(kind: str) -> list:
        room = random.choice(rooms)
        user, named = random.sample(members[room.pk], 2)
        text = {"user": user, "room_id": str(room.pk), "client_msg_id": str(uuid.uuid4()), "content": "hello"}
        if kind != "plain":
            text |= {"reply_to": str(roots[room.pk]), "content": f"hello @{named.username}"}
        (send,) = services._prepare([text], [None])
        if kind in ("plain", "reply"):
            sends, hot_from = services._send_params(send)
            return [(services._SEND_PREPARED, {"sends": sends, "hot_from": hot_from})]
        reaction = services._Reaction(user, room.pk, roots[room.pk], random.choice(EMOJI), random.random() < 0.7)
        steps = services._send_and_react(send, [(0, reaction)])
        if kind == "shared, lock planned":
            params = steps[0][1]
            steps[0] = (services._LOCK_ROOMS, [params["rooms"], params["users"]])
        return steps

    kinds = ["plain", "reply", "shared", "shared, lock planned"]
    walls: dict[str, list[float]] = {kind: [] for kind in kinds}
    cpu: dict[str, float] = dict.fromkeys(kinds, 0.0)
    for block in range(max(1, N // BLOCK)):
        for kind in kinds if block % 2 == 0 else reversed(kinds):
            before = postgres_cpu(postmaster)
            for _ in range(BLOCK):
                steps = request(kind)
                started = time.perf_counter()
                await asyncdb.transaction(steps)
                walls[kind].append((time.perf_counter() - started) * 1000)
            cpu[kind] += postgres_cpu(postmaster) - before
    for kind in kinds:
        wall = walls[kind]
        print(
            f"{kind:22} wall p50 {statistics.median(wall):.3f} ms, mean {statistics.mean(wall):.3f} ms; "
            f"PostgreSQL CPU {cpu[kind] * 1000 / len(wall):.3f} ms per batch (n={len(wall)})"
        )


asyncio.run(main())
