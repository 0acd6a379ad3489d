"""Archived message days for the archive scenarios: a real S3 API (moto's standalone server), a room
with messages on two old days and today, and the archive written to it (messaging.archive)."""

import datetime as dt
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
from django.db import connection
from django.test import override_settings

from tests.conftest import free_port, room_with, send_message, wait_for_port
from tests.test_archive import make_partition

TODAY = dt.datetime.now(dt.UTC).date()
OLD, OLDER = TODAY - dt.timedelta(days=9), TODAY - dt.timedelta(days=10)
KEYS = {"S3_ACCESS_KEY_ID": "k", "S3_SECRET_ACCESS_KEY": "s"}


class Moto:
    """moto's standalone S3 server on 127.0.0.1 and a bucket of our own in it."""

    def __init__(self) -> None:
        port = free_port()
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(port, self.process)
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.client = boto3.client(
            "s3", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
        )
        self.bucket = f"parley-faults-{uuid.uuid4().hex[:8]}"
        self.client.create_bucket(Bucket=self.bucket)

    def settings(self, endpoint: str | None = None) -> dict[str, str]:
        """Settings (as environment variables) that archive to our bucket through `endpoint`."""
        return {"S3_BUCKET": self.bucket, "S3_ENDPOINT_URL": endpoint or self.url, **KEYS}

    def keys(self) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.bucket)
        return sorted(obj["Key"] for obj in listing.get("Contents", []))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@contextmanager
def archive_settings(moto: Moto, endpoint: str | None = None) -> Iterator[None]:
    """This process's messaging.archive, pointed at the bucket (through `endpoint`)."""
    from messaging import archive
    from messaging.archive_storage import archive_storage

    with override_settings(**moto.settings(endpoint)):
        archive_storage.cache_clear()
        archive._cache.clear()
        try:
            yield
        finally:
            archive_storage.cache_clear()
            archive._cache.clear()


def drop_partitions() -> None:
    """Partitions are tables, not rows: flush leaves them, so the scenarios drop theirs."""
    from messaging import archive

    for day in (OLDER, OLD):
        if archive.partition_exists(day):
            with connection.cursor() as cursor:
                cursor.execute(f'DROP TABLE "{archive.partition_name(day)}"')


@dataclass
class History:
    room: str
    users: list
    per_day: int


def history(users: list, per_day: int = 150, today: int = 30) -> History:
    """A room of `users` with `per_day` messages on each old day (10 and 9 days ago) and `today`
    more today: numbers 1..2*per_day archived-to-be, the rest hot."""
    room = room_with(users[0], "Archive", "private", members={user: "member" for user in users[1:]})
    for day in (OLDER, OLD):
        make_partition(day)
    for label, days_ago in (("older", 10), ("old", 9)):
        for i in range(per_day):
            send_message(room, users[i % len(users)], f"{label} {i}")
        with connection.cursor() as cursor:  # move them back in time (PostgreSQL moves the rows)
            cursor.execute(
                "UPDATE messaging_message SET created_at = created_at - make_interval(days => %s) "
                "WHERE room_id = %s AND created_at > now() - interval '1 day'",
                [days_ago, str(room.pk)],
            )
    for i in range(today):
        send_message(room, users[i % len(users)], f"today {i}")
    return History(str(room.pk), users, per_day)


def all_rows() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, room_id, sequence, changed_sequence, sender_id, content, client_msg_id, created_at, "
            "edited_at, deleted_at FROM messaging_message ORDER BY room_id, sequence"
        )
        return cursor.fetchall()
