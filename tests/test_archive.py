"""Archival of message days to a real S3 API (moto's standalone server over HTTP) and back."""

import datetime as dt
import gzip
import json
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.test import override_settings
from psqlextra.partitioning import PostgresTimePartition, PostgresTimePartitionSize

from messaging import archive, services
from messaging.archive_storage import archive_storage
from messaging.models import Message, MessageArchive
from messaging.partitions import NAME_FORMAT
from rooms.models import Room
from tests.conftest import client_for, free_port, room_with, wait_for_port
from tests.conftest import send_message as send

pytestmark = pytest.mark.django_db(transaction=True)

BUCKET = "parley-archive-test"
TODAY = dt.datetime.now(dt.UTC).date()
OLD, OLDER = TODAY - dt.timedelta(days=9), TODAY - dt.timedelta(days=10)


@pytest.fixture(scope="session")
def s3_server():
    """moto's standalone S3 server: a real HTTP S3 API on 127.0.0.1."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def s3(s3_server):
    client = boto3.client(
        "s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    bucket = f"{BUCKET}-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    with override_settings(S3_BUCKET=bucket, S3_ENDPOINT_URL=s3_server, S3_ACCESS_KEY_ID="k", S3_SECRET_ACCESS_KEY="s"):
        archive_storage.cache_clear()
        archive._cache.clear()
        yield client, bucket
    archive_storage.cache_clear()
    archive._cache.clear()
    archive.fault_hook = None


def keys_in(client, bucket) -> list[str]:
    return sorted(obj["Key"] for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def make_partition(day: dt.date) -> None:
    if archive.partition_exists(day):
        return
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    partition = PostgresTimePartition(
        size=PostgresTimePartitionSize(days=1), start_datetime=start, name_format=NAME_FORMAT
    )
    with connection.schema_editor() as editor:
        partition.create(Message, editor)


def age(room_ids, days: int) -> None:
    """Move every message of these rooms written today to `days` before TODAY (PostgreSQL moves the
    rows between partitions). Shifting all by the same amount keeps created_at increasing with
    sequence. TODAY is the day this module was loaded: in a run that crosses midnight UTC the
    messages still land on OLD and OLDER, whose partitions the tests made."""
    days += (dt.datetime.now(dt.UTC).date() - TODAY).days
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE messaging_message SET created_at = created_at - make_interval(days => %s) "
            "WHERE room_id = ANY(%s) AND created_at > now() - interval '1 day'",
            [days, [str(r) for r in room_ids]],
        )


@pytest.fixture
def history(make_user):
    """Two rooms with messages on two old days (10 and 9 days ago) and today; some edited/deleted."""
    ada, bob = make_user("ada"), make_user("bob")
    general = room_with(ada, "General", Room.Kind.PRIVATE, members={bob: "member"})
    random = room_with(bob, "Random", Room.Kind.PRIVATE)
    for day in (OLDER, OLD):
        make_partition(day)
    for batch, days_ago in (("older", 10), ("old", 9)):
        for i in range(30):
            message = send(general, ada if i % 2 else bob, f"{batch} general {i}")
            if i == 3:
                services.message_edit(user=message.sender, room_id=general.pk, message_id=message.id, content="fixed")
            if i == 5:
                services.message_delete(user=ada, room_id=general.pk, message_id=message.id)
        for i in range(7):
            send(random, bob, f"{batch} random {i}")
        age([general.pk, random.pk], days_ago)
    for i in range(25):
        send(general, ada, f"today {i}")
    yield {"ada": ada, "bob": bob, "general": general, "random": random}
    # Partitions are tables, not rows: the transactional flush does not remove them.
    for day in (OLDER, OLD):
        if archive.partition_exists(day):
            with connection.cursor() as cursor:
                cursor.execute(f'DROP TABLE "{archive.partition_name(day)}"')


def all_rows() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, room_id, sequence, changed_sequence, sender_id, content, client_msg_id, created_at, "
            "edited_at, deleted_at FROM messaging_message ORDER BY room_id, sequence"
        )
        return cursor.fetchall()


def page_back(api, room) -> list[dict]:
    """Scroll back from the newest message to the very first, like the web UI does."""
    seen, before = [], None
    for _ in range(100):
        params = {"limit": 17} | ({"before_sequence": before} if before else {})
        body = api.get(f"/api/v1/rooms/{room.pk}/messages/", params).json()
        seen += body["results"]
        if not body["has_more"]:
            return seen
        before = body["results"][-1]["sequence"]
    raise AssertionError("paging did not end")


def page_changes(api, room, after=0) -> list[dict]:
    events = []
    for _ in range(100):
        body = api.get(f"/api/v1/rooms/{room.pk}/changes/", {"after_sequence": after, "limit": 23}).json()
        events += body["results"]
        after = body["last_sequence"]
        if not body["has_more"]:
            return events
    raise AssertionError("sync did not end")


def test_a_day_with_several_rooms_is_archived_verified_and_dropped(s3, history):
    client, bucket = s3
    general, random = history["general"], history["random"]
    before = all_rows()

    summary = archive.archive_due()

    assert summary == {"archived": [OLDER.isoformat(), OLD.isoformat()], "failed": [], "skipped": []}
    assert archive.partition_days()[0] > OLD  # both partitions gone
    record = MessageArchive.objects.get(day=OLDER)
    assert (record.status, record.rows) == ("dropped", 37)
    assert record.room_ranges[str(general.pk)] == {
        "first": 1,
        "last": 32,  # 30 messages; an edit and a delete took two numbers in between
        "count": 30,
        "min_changed": 1,
        "max_changed": 32,
    }
    assert record.room_ranges[str(random.pk)]["count"] == 7
    assert keys_in(client, bucket) == sorted([*archive.object_keys(OLDER), *archive.object_keys(OLD)])
    data = client.get_object(Bucket=bucket, Key=record.key)["Body"].read()
    lines = [json.loads(line) for line in gzip.decompress(data).splitlines()]
    assert len(lines) == 37 and [row[1] for row in lines] == sorted(row[1] for row in lines)  # by room
    manifest = json.loads(client.get_object(Bucket=bucket, Key=record.manifest_key)["Body"].read())
    assert manifest["sha256"] == record.sha256 and manifest["rows"] == 37 and manifest["fields"][0] == "id"
    hot = [row for row in before if row[7].date() > OLD]
    assert all_rows() == hot
    # Running again changes nothing and uploads nothing new.
    assert archive.archive_due()["archived"] == []
    assert len(keys_in(client, bucket)) == 4


def test_paging_and_sync_cross_the_hot_archive_boundary_unchanged(s3, history):
    api = client_for(history["ada"])
    general = history["general"]
    back_before = page_back(api, general)
    changes_before = page_changes(api, general)
    forward_before = api.get(f"/api/v1/rooms/{general.pk}/messages/", {"after_sequence": 0, "limit": 100}).json()

    archive.archive_due()

    back_after = page_back(api, general)
    assert back_after == back_before
    assert len(back_after) == 85 and back_after[-1]["sequence"] == 1
    assert page_changes(api, general) == changes_before
    assert page_changes(api, general, after=10) == [e for e in changes_before if e["sequence"] > 10]
    forward_after = api.get(f"/api/v1/rooms/{general.pk}/messages/", {"after_sequence": 0, "limit": 100}).json()
    assert forward_after == forward_before
    first_page = api.get(f"/api/v1/rooms/{general.pk}/messages/", {"before_sequence": 2}).json()
    assert [m["sequence"] for m in first_page["results"]] == [1] and first_page["has_more"] is False


def test_scrolling_back_fetches_each_archive_object_once(s3, history):
    archive.archive_due()
    archive._cache.clear()
    api = client_for(history["ada"])
    page_back(api, history["general"])
    page_back(api, history["general"])
    assert archive._cache.fetches == 2  # two archived days, fetched once each


def test_archived_and_frozen_messages_cannot_be_changed(s3, history):
    general, ada = history["general"], history["ada"]
    older_id = Message.objects.filter(room=general, sequence=2).values_list("id", flat=True).get()
    api = client_for(ada)
    # Outside the hot window but not yet archived: frozen.
    response = api.patch(f"/api/v1/rooms/{general.pk}/messages/{older_id}/", {"content": "new"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "archived"
    archive.archive_due()
    response = api.delete(f"/api/v1/rooms/{general.pk}/messages/{older_id}/")
    assert response.status_code == 409 and response.json()["error"]["code"] == "archived"
    assert api.delete(f"/api/v1/rooms/{general.pk}/messages/{uuid.uuid4()}/").status_code == 404


class Killed(BaseException):
    """Stands for the worker process dying: nothing after it runs, not even error handling."""


@pytest.mark.parametrize("step", ["build", "upload", "verify", "drop"])
def test_a_failure_at_any_step_loses_nothing_and_a_rerun_completes(s3, history, step):
    client, bucket = s3
    before = all_rows()

    def fail(name):
        if name == step:
            if step == "verify":  # the object in storage is not what we wrote
                client.put_object(Bucket=bucket, Key=archive.object_keys(OLDER)[0], Body=b"garbage")
                return
            if step == "drop":
                raise Killed()
            raise OSError(f"injected failure before {step}")

    archive.fault_hook = fail
    with pytest.raises((Killed, archive.ArchiveError, OSError)):
        archive.archive_day(OLDER)
    connections.close_all()  # a killed worker's session is gone; so is its advisory lock
    record = MessageArchive.objects.get(day=OLDER)
    assert record.status == ("verified" if step == "drop" else "failed")
    assert archive.partition_exists(OLDER)
    assert all_rows() == before  # nothing lost

    archive.fault_hook = None
    assert archive.archive_day(OLDER).status == "dropped"
    assert not archive.partition_exists(OLDER)
    assert keys_in(client, bucket) == sorted(archive.object_keys(OLDER))
    archive.verify_day(OLDER)
    archive.restore_day(OLDER)
    assert all_rows() == before


def test_two_workers_never_archive_the_same_day(s3, history):
    other = connections.create_connection("default")
    with other.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [archive._LOCK_NAMESPACE, OLDER.toordinal()])
    try:
        assert archive.archive_day(OLDER) is None
        assert archive.partition_exists(OLDER)
        assert archive.archive_due()["skipped"] == [OLDER.isoformat()]
    finally:  # the other worker finishes (its connection may go back to a pool, so it unlocks)
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [archive._LOCK_NAMESPACE, OLDER.toordinal()])
        other.close()
    assert archive.archive_day(OLDER).status == "dropped"


def test_restore_puts_back_identical_rows(s3, history):
    before = all_rows()
    archive.archive_due()
    call_command("verify_archive")
    call_command("restore_archive", OLD.isoformat())
    call_command("restore_archive", OLDER.isoformat())
    assert all_rows() == before
    assert set(MessageArchive.objects.values_list("status", flat=True)) == {"restored"}
    assert archive.days_to_archive() == []  # restored days are left alone until an operator says so
    assert page_back(client_for(history["ada"]), history["general"])[-1]["sequence"] == 1


def test_operator_commands(s3, history, capsys):
    call_command("archive_messages", "--dry-run")
    out = capsys.readouterr().out
    assert f"would archive {OLDER}" in out and f"would archive {OLD}" in out
    assert archive.partition_exists(OLDER)
    call_command("archive_messages", "--before", OLD.isoformat())
    assert not archive.partition_exists(OLDER) and archive.partition_exists(OLD)
    call_command("list_partitions", "--exact")
    assert f"messaging_message_{OLD:%Y%m%d}" in capsys.readouterr().out


def test_without_a_bucket_archives_go_to_a_local_directory(history, tmp_path):
    with override_settings(S3_BUCKET="", ARCHIVE_LOCAL_DIR=str(tmp_path)):
        archive_storage.cache_clear()
        archive._cache.clear()
        try:
            before = all_rows()
            archive.archive_due()
            assert (tmp_path / archive.object_keys(OLDER)[0]).exists()
            assert page_back(client_for(history["ada"]), history["general"])[-1]["sequence"] == 1
            archive.restore_day(OLDER)
            archive.restore_day(OLD)
            assert all_rows() == before
        finally:
            archive_storage.cache_clear()
            archive._cache.clear()


def test_the_celery_task_archives_due_days(s3, history):
    from messaging.tasks import archive_partitions

    result = archive_partitions.apply().get()
    assert result["archived"] == [OLDER.isoformat(), OLD.isoformat()]


@pytest.mark.asyncio
async def test_socket_history_pages_reach_into_the_archive(s3, history):
    from channels.db import database_sync_to_async

    from tests.sockets import TIMEOUT, connect, receive_type

    await database_sync_to_async(archive.archive_due)()
    socket, _ = await connect(history["ada"])
    room = str(history["general"].pk)
    seen, before = [], None
    while True:
        frame = {"type": "history", "room": room, "limit": 40} | ({"before_sequence": before} if before else {})
        await socket.send_json_to(frame)
        page = await receive_type(socket, "history.page")
        seen += [m["sequence"] for m in page["messages"]]
        if not page["has_more"]:
            break
        before = page["messages"][-1]["sequence"]
    assert len(seen) == 85 and seen == sorted(seen, reverse=True) and seen[-1] == 1
    await socket.send_json_to({"type": "history", "room": room, "limit": 0})
    error = await receive_type(socket, "error")
    assert error["code"] == "invalid" and list(error["fields"]) == ["limit"]
    await socket.disconnect(timeout=TIMEOUT)


def test_an_unreadable_archive_answers_archive_unavailable_and_the_hot_part_still_reads(s3, history):
    """The archive object of a day is gone (or the store is down): history that needs that day
    answers 503 archive_unavailable (JSON, with Retry-After), never a 500 page; today's history
    still reads."""
    client, bucket = s3
    archive.archive_due()
    archive._cache.clear()
    client.delete_object(Bucket=bucket, Key=archive.object_keys(OLDER)[0])
    api = client_for(history["ada"])
    url = f"/api/v1/rooms/{history['general'].pk}/messages/"

    hot = api.get(url, {"limit": 20})
    archived = api.get(url, {"before_sequence": 10, "limit": 5})

    assert hot.status_code == 200 and hot.json()["results"][0]["content"] == "today 24"
    assert archived.status_code == 503 and archived["Retry-After"] == "1"
    assert archived.json()["error"]["code"] == "archive_unavailable"


def test_a_hanging_store_answers_archive_unavailable_and_the_page_reads_once_it_answers(s3, s3_server, history):
    """S3 accepts connections but never answers (the fault suite's proxy, frozen): the reader
    gives up (one attempt, short timeouts: messaging.archive_storage) and history answers 503
    archive_unavailable; once the store answers again, the same page reads."""
    from tests.faults.proxy import ProxyThread

    _, bucket = s3
    archive.archive_due()
    archive._cache.clear()
    proxies = ProxyThread()
    host, port = s3_server.removeprefix("http://").split(":")
    proxy = proxies.start((host, int(port)))
    api = client_for(history["ada"])
    url = f"/api/v1/rooms/{history['general'].pk}/messages/"
    healthy = api.get(url, {"before_sequence": 10, "limit": 5}).json()["results"]
    archive._cache.clear()
    try:
        with override_settings(S3_ENDPOINT_URL=f"http://{proxy.address}"):
            archive_storage.cache_clear()
            proxy.freeze()
            hung = api.get(url, {"before_sequence": 10, "limit": 5})
            proxy.restore()
            for _ in range(5):  # the first read after the restore is enough on any but a swamped box
                again = api.get(url, {"before_sequence": 10, "limit": 5})
                if again.status_code == 200:
                    break
    finally:
        proxy.restore()
        proxies.stop()
        archive_storage.cache_clear()

    assert hung.status_code == 503 and hung.json()["error"]["code"] == "archive_unavailable"
    assert again.status_code == 200 and again.json()["results"] == healthy and healthy


def test_the_reader_tries_again_only_after_a_quick_failure(monkeypatch):
    """One more attempt when the first failed at once (an error answer, a refused connection);
    none after a slow failure (a timeout: the page has waited long enough) or a missing object."""
    from botocore.exceptions import ClientError

    from messaging import archive_storage as storage

    clock = [0.0]
    monkeypatch.setattr(storage, "monotonic", lambda: clock[0])
    reader = storage.S3Storage(
        bucket="b", endpoint_url="http://127.0.0.1:9", region="us-east-1", access_key="k", secret_key="s"
    )

    def reads(*outcomes):
        attempts = []

        def read(key):
            outcome = outcomes[len(attempts)]
            attempts.append(key)
            clock[0] += outcome[0]
            if isinstance(outcome[1], Exception):
                raise outcome[1]
            return outcome[1]

        monkeypatch.setattr(reader, "_read", read)
        return attempts

    quick, slow = storage.QUICK_FAILURE_SECONDS / 2, storage.QUICK_FAILURE_SECONDS * 2
    missing = ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")

    attempts = reads((quick, ConnectionError("refused")), (quick, b"day"))
    assert reader.get_bytes("k") == b"day" and len(attempts) == 2

    attempts = reads((slow, TimeoutError("read timed out")), (quick, b"day"))
    with pytest.raises(TimeoutError):
        reader.get_bytes("k")
    assert len(attempts) == 1

    attempts = reads((quick, missing), (quick, b"day"))
    with pytest.raises(ClientError):
        reader.get_bytes("k")
    assert len(attempts) == 1
