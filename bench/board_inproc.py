"""In-process cost of board updates, without sockets or a server: `board_update_apply` one at a
time (the REST path) and, where the code has it, `board_update_apply_many` in batches (the sockets'
path). Events are collected as under core.events.call_service (published by the loop, not here).

    scripts/stack.py test -- .venv/bin/python bench/board_inproc.py [N] [BATCH] [ROOT]

ROOT (default: this checkout) may be another tree of the project, e.g. an older commit unpacked
with `git archive COMMIT | tar -x -C DIR`, to compare the same steps before and after on one
machine in one run (docs/performance.md, "Boards")."""

import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300
BATCH = int(sys.argv[2]) if len(sys.argv) > 2 else 50
ROOT = Path(sys.argv[3] if len(sys.argv) > 3 else Path(__file__).resolve().parent.parent)
os.chdir(ROOT)
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("PARLEY_TESTING", "1")
subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], check=True)

import django  # noqa: E402

django.setup()

from pycrdt import Doc, Map  # noqa: E402

from accounts.models import User  # noqa: E402
from boards import services  # noqa: E402
from core import events  # noqa: E402
from rooms.services import room_create  # noqa: E402

events._outbox.set([])  # as under call_service: the events are collected, the loop publishes them


def main() -> None:
    user = User.objects.create_user(f"inproc-{uuid.uuid4().hex[:6]}", password="x-Secret-123")
    room = room_create(creator=user, name="inproc", kind="private")
    board = services.board_create(user=user, room_id=room.pk, title="B")
    doc = Doc()
    elements = doc.get("elements", type=Map)

    def edit(i: int) -> bytes:
        before = doc.get_state()
        elements[f"e{i % 50}"] = {"x": i, "y": i}
        return doc.get_update(before)

    updates = [edit(i) for i in range(2 * N)]
    walls = []
    cpu, wall = time.process_time(), time.perf_counter()
    for update in updates[:N]:
        start = time.perf_counter()
        services.board_update_apply(user=user, board_id=board.pk, update=update, client_update_id=uuid.uuid4())
        walls.append((time.perf_counter() - start) * 1000)
    print(
        f"{ROOT}: board_update_apply one at a time x{N}: p50 {statistics.median(walls):.2f} ms, "
        f"wall {(time.perf_counter() - wall) * 1000 / N:.2f} ms/update, "
        f"CPU {(time.process_time() - cpu) * 1000 / N:.2f} ms/update"
    )
    if not hasattr(services, "board_update_apply_many"):
        return
    walls = []
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(N, 2 * N, BATCH):
        requests = [
            {"user": user, "board_id": board.pk, "update": u, "client_update_id": uuid.uuid4(), "session": None}
            for u in updates[i : i + BATCH]
        ]
        start = time.perf_counter()
        results = services.board_update_apply_many(requests=requests)
        walls.append((time.perf_counter() - start) * 1000)
        assert all(isinstance(r, tuple) for r in results), results
    print(
        f"{ROOT}: board_update_apply_many in batches of {BATCH} x{len(walls)}: batch p50 "
        f"{statistics.median(walls):.2f} ms, wall {(time.perf_counter() - wall) * 1000 / N:.2f} ms/update, "
        f"CPU {(time.process_time() - cpu) * 1000 / N:.2f} ms/update"
    )


main()
