"""The operators' admin (issue 17): a read-only Message admin that reaches archived days, Celery
task runs recorded by signals, jobs (archive now, verify, restore) queued through
operations.services with their progress, partitions with sizes, live connections per process.

Jobs run in-process here (Celery's eager mode: the same signals fire as in a worker); the worker
side of Celery is covered by tests/test_simulator_worker.py."""

import datetime as dt
import json
import time

import pytest
import redis
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from accounts.models import User
from config.celery_app import app as celery_app
from core.hub import CONNECTIONS_KEY, get_hub
from messaging import archive
from messaging.archive_storage import archive_storage
from messaging.models import Message, MessageArchive
from operations.models import TaskRun
from operations.services import task_runs_prune
from operations.tasks import prune_task_runs
from rooms.models import Room
from tests.conftest import room_with
from tests.conftest import send_message as send
from tests.sockets import connect
from tests.test_archive import age, make_partition

pytestmark = [pytest.mark.django_db(transaction=True)]

TODAY = dt.datetime.now(dt.UTC).date()
OLD, OLDER = TODAY - dt.timedelta(days=9), TODAY - dt.timedelta(days=10)
PAGES = [
    "/admin/operations/messagerecord/",
    "/admin/operations/taskrun/",
    "/admin/operations/partition/",
    "/admin/operations/processconnections/",
    f"/admin/operations/messagerecord/archived/{OLD.isoformat()}/",
]


@pytest.fixture
def staff(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "correct-horse-battery"))
    return client


@pytest.fixture
def eager(monkeypatch):
    """Tasks queued with apply_async run at once, in this process, through Celery's tracer."""
    monkeypatch.setattr(celery_app.conf, "task_always_eager", True)


@pytest.fixture
def local_archive(tmp_path):
    with override_settings(S3_BUCKET="", ARCHIVE_LOCAL_DIR=str(tmp_path)):
        archive_storage.cache_clear()
        archive._cache.clear()
        yield tmp_path
    archive_storage.cache_clear()
    archive._cache.clear()


@pytest.fixture
def days(make_user, local_archive):
    """Room "Ops" with 4 messages on each of two old days (ann and bob) and 1 today; one more a day
    in bob's room "Elsewhere". Contents are unique markers ("old-msg-1") to look for in pages. The
    searches look for "ann", which no room id can contain ('n' is not a hex digit); "ada" is all
    hex digits, and once a room's id held it."""
    ann, bob = make_user("ann"), make_user("bob")
    room = room_with(ann, "Ops", Room.Kind.PRIVATE, members={bob: "member"})
    other = room_with(bob, "Elsewhere", Room.Kind.PRIVATE)
    for day in (OLDER, OLD):
        make_partition(day)
    for label, days_ago in (("older", 10), ("old", 9)):
        for i in range(4):
            send(room, ann if i % 2 else bob, f"{label}-msg-{i}")
        send(other, bob, f"{label}-elsewhere-msg")
        age([room.pk, other.pk], days_ago)
    send(room, ann, "today-msg-0")
    send(other, bob, "today-elsewhere-msg")
    yield {"ann": ann, "bob": bob, "room": room, "other": other}
    for day in (OLDER, OLD):
        if archive.partition_exists(day):
            with connection.cursor() as cursor:
                cursor.execute(f'DROP TABLE "{archive.partition_name(day)}"')


def test_operator_pages_and_jobs_refuse_non_staff(make_user, days):
    client = Client()
    client.force_login(make_user("mallory"))

    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), page
    response = client.post("/admin/operations/taskrun/archive-now/")

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    # Staff without the operators' permissions: refused too.
    client.force_login(make_user("intern", is_staff=True))
    assert client.post("/admin/operations/taskrun/archive-now/").status_code == 403
    assert client.get("/admin/operations/processconnections/").status_code == 403
    assert not TaskRun.objects.exists()
    assert archive.partition_exists(OLD)


def test_message_admin_is_read_only_and_searches_by_room_sender_and_day(staff, days):
    found = staff.get("/admin/operations/messagerecord/", {"q": "Ops"}).content.decode()
    by_sender = staff.get("/admin/operations/messagerecord/", {"q": "ann"}).content.decode()
    by_room_id = staff.get("/admin/operations/messagerecord/", {"q": str(days["other"].pk)}).content.decode()
    on_old = staff.get("/admin/operations/messagerecord/", {"day": OLD.isoformat()}).content.decode()
    bad_day = staff.get("/admin/operations/messagerecord/", {"day": "yesterday"})
    message = Message.objects.get(content="today-msg-0")
    page = staff.get(f"/admin/operations/messagerecord/{message.id}/change/")
    edit = staff.post(f"/admin/operations/messagerecord/{message.id}/change/", {"content": "changed"})

    assert "today-msg-0" in found and "old-msg-1" in found and "elsewhere-msg" not in found
    assert "old-msg-1" in by_sender and "old-msg-0" not in by_sender  # bob sent the even ones
    assert "today-elsewhere-msg" in by_room_id and "today-msg-0" not in by_room_id
    assert "old-msg-2" in on_old and "older-msg-2" not in on_old and "today-msg-0" not in on_old
    assert bad_day.status_code == 302 and "e=1" in bad_day["Location"]
    assert page.status_code == 200 and "today-msg-0" in page.content.decode()
    assert edit.status_code == 403 and Message.objects.get(id=message.id).content == "today-msg-0"
    assert staff.get("/admin/operations/messagerecord/add/").status_code == 403


def test_jobs_archive_verify_and_restore_with_progress(staff, days, eager):
    before = sorted(Message.objects.values_list("content", flat=True))

    response = staff.post("/admin/operations/taskrun/archive-now/", follow=True)

    run = TaskRun.objects.get(name="messaging.tasks.archive_partitions")
    assert "Archiving queued" in response.content.decode()
    assert run.status == TaskRun.Status.SUCCEEDED and run.requested_by.username == "root"
    assert (run.progress_done, run.progress_total) == (2, 2) and run.duration_ms is not None
    assert run.queued_at <= run.started_at <= run.finished_at
    assert not archive.partition_exists(OLD) and not archive.partition_exists(OLDER)
    listing = staff.get("/admin/operations/taskrun/").content.decode()
    assert "messaging.tasks.archive_partitions" in listing and "2/2" in listing

    # The archived day, searched by date and sender, is read from the archive.
    shown = staff.get("/admin/operations/messagerecord/", {"day": OLD.isoformat(), "q": "ann"}, follow=True)
    text = shown.content.decode()
    assert shown.redirect_chain[0][0].startswith(f"/admin/operations/messagerecord/archived/{OLD.isoformat()}/")
    assert "old-msg-1" in text and "old-msg-3" in text and "old-msg-0" not in text and "older-msg" not in text
    assert "2 messages" in text

    records = MessageArchive.objects.filter(day__in=[OLD, OLDER])
    ids = [str(pk) for pk in records.values_list("pk", flat=True)]
    staff.post("/admin/messaging/messagearchive/", {"action": "verify_days", "_selected_action": ids})
    verify = TaskRun.objects.get(name="messaging.tasks.verify_archive_days")
    assert verify.status == TaskRun.Status.SUCCEEDED and verify.progress_done == verify.progress_total == 2

    old_id = str(MessageArchive.objects.get(day=OLD).pk)
    staff.post("/admin/messaging/messagearchive/", {"action": "restore_days", "_selected_action": [old_id]})
    restore = TaskRun.objects.get(name="messaging.tasks.restore_archive_days")
    assert restore.status == TaskRun.Status.SUCCEEDED and restore.args == [[OLD.isoformat()]]
    assert MessageArchive.objects.get(day=OLD).status == MessageArchive.Status.RESTORED
    assert archive.partition_exists(OLD)
    back = staff.get("/admin/operations/messagerecord/", {"day": OLD.isoformat()}).content.decode()
    assert "old-msg-2" in back  # from PostgreSQL again
    assert sorted(Message.objects.values_list("content", flat=True)) == sorted(
        c for c in before if not c.startswith("older-")
    )


def test_a_job_refused_changes_nothing_and_says_why(staff, days, eager):
    make = MessageArchive.objects.create
    pending = make(day=OLD, partition=archive.partition_name(OLD), status=MessageArchive.Status.PENDING)

    response = staff.post(
        "/admin/messaging/messagearchive/",
        {"action": "restore_days", "_selected_action": [str(pending.pk)]},
        follow=True,
    )

    assert "cannot be restored" in response.content.decode()
    assert not TaskRun.objects.exists()
    assert MessageArchive.objects.get(pk=pending.pk).status == MessageArchive.Status.PENDING


def test_a_failing_task_run_is_recorded_with_its_error(staff, days, eager, local_archive):
    staff.post("/admin/operations/taskrun/archive-now/")
    data_key, _ = archive.object_keys(OLD)
    (local_archive / data_key).write_bytes(b"not what was archived")
    old_id = str(MessageArchive.objects.get(day=OLD).pk)

    staff.post("/admin/messaging/messagearchive/", {"action": "verify_days", "_selected_action": [old_id]})

    run = TaskRun.objects.get(name="messaging.tasks.verify_archive_days")
    assert run.status == TaskRun.Status.FAILED and run.finished_at is not None
    assert "checksum mismatch" in run.error and "Traceback" in run.error
    listing = staff.get("/admin/operations/taskrun/", {"status__exact": "failed"}).content.decode()
    assert "verification failed" in listing


def test_old_task_runs_are_pruned(db):
    long_ago = timezone.now() - dt.timedelta(days=settings.TASK_RUNS_KEEP_DAYS + 1)
    old = TaskRun.objects.create(task_id="old", name="x")
    TaskRun.objects.filter(pk=old.pk).update(created_at=long_ago)
    TaskRun.objects.create(task_id="new", name="x")
    lost = TaskRun.objects.create(task_id="lost", name="y", status=TaskRun.Status.RUNNING)
    TaskRun.objects.filter(pk=lost.pk).update(started_at=timezone.now() - dt.timedelta(days=2))

    result = prune_task_runs.apply().get()

    assert result == 1
    lost.refresh_from_db()
    assert lost.status == TaskRun.Status.FAILED and "worker died" in lost.error
    assert list(TaskRun.objects.filter(name="x").values_list("task_id", flat=True)) == ["new"]
    (own,) = TaskRun.objects.filter(name="operations.tasks.prune_task_runs")  # recorded like any task
    assert own.status == TaskRun.Status.SUCCEEDED and own.result == "1"
    assert task_runs_prune(keep_days=0) == 3  # "new", "lost" and the prune's own run: recorded before now


def test_the_partition_page_lists_every_partition_with_its_size(staff, days):
    text = staff.get("/admin/operations/partition/").content.decode()

    assert archive.partition_name(OLD) in text and archive.partition_name(TODAY) in text
    assert "messaging_message" in text and 'id="partition-totals"' in text
    assert "day(s) ahead" in text


@pytest.mark.asyncio
async def test_live_connections_per_process_ignore_stale_entries(staff, make_user):
    ada = await database_sync_to_async(make_user)("ada")
    sockets = [(await connect(ada))[0] for _ in range(2)]
    hub = get_hub()
    await hub.report_connections()
    stale = {"connections": {"socket": 500}, "updated_at": time.time() - settings.CONNECTIONS_STALE_SECONDS - 5}
    redis.Redis.from_url(settings.REDIS_URL).hset(CONNECTIONS_KEY, "gone:1", json.dumps(stale))

    text = (await database_sync_to_async(staff.get)("/admin/operations/processconnections/")).content.decode()

    assert hub.connections() == {"socket": 2}
    assert hub.process in text and "socket=2" in text
    assert '<span id="total-connections">2</span>' in text
    assert 'id="stale-processes"' in text and "gone:1" in text
    for socket in sockets:
        await socket.disconnect()
