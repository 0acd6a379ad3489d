"""Archive throughput: one day of ROWS messages (default 1,000,000) to an S3 API and back.

    make bench-archive        # throwaway PostgreSQL + Redis, moto's S3 server on 127.0.0.1

Fills a partition 30 days back with ROWS messages spread over 100 rooms (one INSERT ... SELECT),
then times `archive_day` (stream + gzip + upload + read-back verify + drop) and `restore_day`.
Prints the figures and writes bench/results/archive.json.
"""

import datetime as dt
import json
import os
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

import boto3  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import override_settings  # noqa: E402
from psqlextra.partitioning import PostgresTimePartition, PostgresTimePartitionSize  # noqa: E402

from accounts.models import User  # noqa: E402
from messaging import archive  # noqa: E402
from messaging.archive_storage import archive_storage  # noqa: E402
from messaging.models import Message, MessageArchive  # noqa: E402
from messaging.partitions import NAME_FORMAT  # noqa: E402
from rooms.models import Room  # noqa: E402
from tests.conftest import free_port, wait_for_port  # noqa: E402
from workspaces.services import default_workspace  # noqa: E402

ROWS = int(os.environ.get("ROWS", "1000000"))
ROOMS = 100


def fill(day: dt.date) -> None:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    with connection.schema_editor() as editor:
        PostgresTimePartition(
            size=PostgresTimePartitionSize(days=1), start_datetime=start, name_format=NAME_FORMAT
        ).create(Message, editor)
    user = User.objects.create_user(f"bench-{uuid.uuid4().hex[:6]}", password=None)
    workspace = default_workspace()
    rooms = Room.objects.bulk_create(
        [Room(name=f"archive bench {i}", created_by=user, workspace=workspace) for i in range(ROOMS)]
    )
    per_room = ROWS // ROOMS
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO messaging_message
                (id, room_id, sequence, changed_sequence, sender_id, content, client_msg_id, created_at)
            SELECT gen_random_uuid(), r.id, s.n, s.n, %s,
                   'Message number ' || s.n || ' in a room where people talk about the launch plans',
                   gen_random_uuid(),
                   %s::timestamptz + make_interval(secs => s.n * 86000.0 / %s)
              FROM unnest(%s::uuid[]) AS r(id), generate_series(1, %s) AS s(n)
            """,
            [user.pk, start, per_room, [str(r.pk) for r in rooms], per_room],
        )
        cursor.execute(
            "UPDATE rooms_room SET last_sequence = %s WHERE id = ANY(%s::uuid[])",
            [per_room, [str(r.pk) for r in rooms]],
        )
        cursor.execute(f'ANALYZE "{archive.partition_name(day)}"')


def main() -> int:
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, check=True)
    port = free_port()
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=30)
    moto = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, moto)
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
        ).create_bucket(Bucket="bench")
        print(f"filling {ROWS} messages into {archive.partition_name(day)} ...", flush=True)
        started = time.perf_counter()
        fill(day)
        fill_seconds = time.perf_counter() - started
        with override_settings(
            S3_BUCKET="bench", S3_ENDPOINT_URL=endpoint, S3_ACCESS_KEY_ID="k", S3_SECRET_ACCESS_KEY="s"
        ):
            archive_storage.cache_clear()
            print("archiving ...", flush=True)
            started = time.perf_counter()
            record = archive.archive_day(day)
            archive_seconds = time.perf_counter() - started
            print("restoring ...", flush=True)
            started = time.perf_counter()
            archive.restore_day(day)
            restore_seconds = time.perf_counter() - started
    finally:
        # Leave the database as we found it (the day would otherwise be due for archiving).
        if archive.partition_exists(day):
            with connection.cursor() as cursor:
                cursor.execute(f'DROP TABLE "{archive.partition_name(day)}"')
        MessageArchive.objects.filter(day=day).delete()
        moto.terminate()
        moto.wait(timeout=10)
    figures = {
        "rows": record.rows,
        "compressed_bytes": record.bytes,
        "fill_seconds": round(fill_seconds, 1),
        "archive_seconds": round(archive_seconds, 1),
        "archive_rows_per_second": round(record.rows / archive_seconds),
        "restore_seconds": round(restore_seconds, 1),
        "restore_rows_per_second": round(record.rows / restore_seconds),
    }
    for name, value in figures.items():
        print(f"{name:<26}{value:>14}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "archive.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
