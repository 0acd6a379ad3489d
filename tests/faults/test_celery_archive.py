"""A real `celery worker` SIGKILLed in the middle of the archive task, twice, then the task run
again: the archive resumes, and history is exactly what it was (messaging/archive.py).

The worker reaches S3 (moto) through a fault proxy: frozen, it holds the worker inside a step
long enough to kill it there. First kill: while uploading the day (S3 frozen from the start).
Second kill: after the upload, while reading the object back to verify it (S3 slowed, then
frozen as soon as the record says `uploaded`). Then a third worker runs the task to the end.
A killed worker's task is not redelivered before the broker's visibility timeout (an hour), so
"again" is what Celery beat does on its next run: the task is sent once more.
"""

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT, server_env, wait_until
from tests.faults.archive_data import OLD, OLDER, Moto, all_rows, archive_settings, drop_partitions, history
from tests.faults.harness import RESULTS, people, record
from tests.faults.proxy import ProxyThread

BOUND = 60  # seconds for a worker to reach a step, or to finish


class Worker:
    """`celery -A config worker` (solo pool: the task runs in this very process) on a queue of its own."""

    def __init__(self, queue: str, env: dict[str, str], n: int) -> None:
        log = RESULTS.parent / f"celery-worker-{n}.log"
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "celery"), "-A", "config", "worker", "--pool", "solo", "-Q", queue]
            + ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def record_of(day):
    from messaging.models import MessageArchive

    return MessageArchive.objects.filter(day=day).values("status", "attempts").first()


def until(condition, what: str) -> float:
    started = time.monotonic()
    wait_until(condition, timeout=BOUND, what=what)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def archived_after_kills(fault_db):
    from messaging import archive
    from messaging.tasks import archive_partitions

    moto = Moto()
    proxies = ProxyThread()
    s3 = proxies.start(("127.0.0.1", moto.port))
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    env = server_env() | moto.settings(f"http://{s3.address}") | {"PYTHONUNBUFFERED": "1"}
    workers: list[Worker] = []
    figures: dict = {}
    try:
        history(people(2, "archive-").users)
        before = all_rows()
        pages_before = pages()

        def run_task() -> None:
            archive_partitions.apply_async(queue=queue)

        # 1. S3 frozen: the worker builds the day, then hangs uploading it. Kill it there.
        s3.freeze()
        workers.append(Worker(queue, env, 1))
        run_task()
        figures["kill_1_after_s"] = until(
            lambda: (record_of(OLDER) or {}).get("attempts") == 1 and s3.held > 0, "the upload of the first day"
        )
        workers[-1].kill()
        figures["state_after_kill_1"] = record_of(OLDER)
        assert archive.partition_exists(OLDER) and all_rows() == before

        # 2. S3 slow: the upload goes through; freeze it once uploaded, while the worker verifies.
        s3.restore()
        s3.slow(0.3)
        workers.append(Worker(queue, env, 2))
        run_task()
        figures["kill_2_after_s"] = until(
            lambda: (record_of(OLDER) or {}).get("status") == "uploaded", "the first day being uploaded"
        )
        s3.freeze()
        wait_until(lambda: s3.held > 0, timeout=BOUND, what="the worker reading the object back")
        workers[-1].kill()
        figures["state_after_kill_2"] = record_of(OLDER)
        assert archive.partition_exists(OLDER) and all_rows() == before

        # 3. S3 back: the task, sent again, resumes and finishes both days.
        s3.restore()
        workers.append(Worker(queue, env, 3))
        started = time.monotonic()
        run_task()
        until(lambda: (record_of(OLD) or {}).get("status") == "dropped", "both days archived")
        figures["rerun_s"] = round(time.monotonic() - started, 1)
        figures["records"] = {str(day): record_of(day) for day in (OLDER, OLD)}
        figures["partitions_left"] = [str(day) for day in (OLDER, OLD) if archive.partition_exists(day)]
        figures["keys"] = moto.keys()
        with archive_settings(moto):
            figures["verified"] = [str(archive.verify_day(day).day) for day in (OLDER, OLD)]
            figures["pages_equal"] = pages() == pages_before
        figures["archived_rows"] = sum(1 for row in before if row[7].date() <= OLD)
        figures["hot_rows_equal"] = all_rows() == [row for row in before if row[7].date() > OLD]
        figures["expected_keys"] = sorted([*archive.object_keys(OLDER), *archive.object_keys(OLD)])
    finally:
        for worker in workers:
            worker.stop()
        proxies.stop()
        moto.stop()
        drop_partitions()
    record("celery_kill", "Celery worker SIGKILLed mid-archive (uploading, then verifying), task re-run", figures)
    return figures


def pages() -> list[dict]:
    """Every message of the archive room as history pages show it, newest first (archive included)."""
    from accounts.models import User
    from messaging import selectors
    from rooms.models import Room

    room = Room.objects.get(name="Archive")
    user = User.objects.get(username="archive-0")
    seen, before = [], None
    for _ in range(100):
        messages, has_more = selectors.messages_page(user=user, room_id=room.pk, before_sequence=before, limit=100)
        seen += [(m.sequence, str(m.id), m.content, m.changed_sequence) for m in messages]
        if not has_more:
            return seen
        before = messages[-1].sequence
    raise AssertionError("paging did not end")


def test_a_killed_worker_leaves_the_partition_and_every_row(archived_after_kills):
    assert archived_after_kills["state_after_kill_1"]["status"] == "pending"
    assert archived_after_kills["state_after_kill_2"]["status"] == "uploaded"


def test_the_task_run_again_resumes_and_archives_both_days(archived_after_kills):
    figures = archived_after_kills
    assert {day: r["status"] for day, r in figures["records"].items()} == {str(OLDER): "dropped", str(OLD): "dropped"}
    assert figures["partitions_left"] == []
    assert figures["keys"] == figures["expected_keys"]  # each object once, under its deterministic key
    assert figures["verified"] == [str(OLDER), str(OLD)]


def test_history_is_exactly_what_it_was(archived_after_kills):
    assert archived_after_kills["pages_equal"]
    assert archived_after_kills["hot_rows_equal"]
