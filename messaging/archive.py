"""Moving whole days of messages out of PostgreSQL into object storage, and back.

A day is archived once it is entirely older than MESSAGE_HOT_DAYS. Such a day is frozen: its
messages can no longer be edited or deleted (`archived`), so the partition and its archive can
never disagree. Steps, each recorded in MessageArchive before the next one starts:

1. take a PostgreSQL advisory lock for the day (two workers never archive the same partition);
2. stream the partition, ordered by (room, sequence), into gzip-compressed JSON lines (the same
   rows always give the same bytes) and upload it with a manifest, under deterministic keys;
3. read the object back and verify its sha256 and row count -> `verified`;
4. only then detach and drop the partition -> `dropped`.

A worker killed anywhere leaves the partition, a verified archive, or both; never neither. A
re-run picks up where the record says and overwrites the same keys, so there are no duplicates.
"""

import datetime as dt
import gzip
import hashlib
import io
import json
import logging
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from psqlextra.partitioning import PostgresTimePartition, PostgresTimePartitionSize

from core import metrics
from core.errors import Unavailable
from messaging.archive_storage import archive_storage
from messaging.models import Message, MessageArchive
from messaging.partitions import NAME_FORMAT

if TYPE_CHECKING:
    from psqlextra.backend.schema import PostgresSchemaEditor

logger = logging.getLogger(__name__)

FORMAT = "parley.messages.v1"
FIELDS = [
    "id",
    "room",
    "sequence",
    "changed_sequence",
    "sender",
    "content",
    "client_msg_id",
    "created_at",
    "edited_at",
    "deleted_at",
    # Since issue 16 (threads and reactions); rows of older archives stop before these.
    "reply_to",
    "reply_count",
    "last_reply_at",
    "reactions",
    "change_kind",
    # Since attachments (issue 16); rows of older archives stop before it.
    "attachments",
    # Since mentions (issue 16, docs/notifications.md); rows of older archives stop before it.
    "mentions",
]
COLUMNS = (
    "id, room_id, sequence, changed_sequence, sender_id, content, client_msg_id, created_at, edited_at, deleted_at,"
    " reply_to, reply_count, last_reply_at, reactions, change_kind, attachments, mentions"
)
PARENT = Message._meta.db_table
_LOCK_NAMESPACE = 0x5041524C  # "PARL"

# Tests inject failures here: called with the name of the step about to run.
fault_hook: Callable[[str], None] | None = None


class ArchiveError(Exception):
    pass


def _step(name: str) -> None:
    if fault_hook is not None:
        fault_hook(name)


def partition_name(day: dt.date) -> str:
    return f"{PARENT}_{day.strftime(NAME_FORMAT)}"


def object_keys(day: dt.date) -> tuple[str, str]:
    base = f"{settings.ARCHIVE_PREFIX}/{day:%Y/%m/%d}/messages-{day:%Y%m%d}"
    return f"{base}.jsonl.gz", f"{base}.manifest.json"


def hot_cutoff(today: dt.date | None = None) -> dt.date:
    """Days before this one are outside the hot window (archivable, and read-only)."""
    today = today or timezone.now().astimezone(dt.UTC).date()
    return today - dt.timedelta(days=settings.MESSAGE_HOT_DAYS)


def partition_days() -> list[dt.date]:
    """The days that currently have a partition, oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [PARENT],
        )
        names = [row[0] for row in cursor.fetchall()]
    days = []
    for name in names:
        try:
            days.append(dt.datetime.strptime(name.removeprefix(f"{PARENT}_"), NAME_FORMAT).date())
        except ValueError:
            continue
    return sorted(days)


def partition_exists(day: dt.date) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [partition_name(day)])
        return cursor.fetchone()[0] is not None


@contextmanager
def _day_lock(day: dt.date, *, wait: bool = False) -> Iterator[bool]:
    # A session-level lock, as the steps span several transactions. It must be unlocked here and
    # not left to the connection's end: pooled connections outlive the code that borrowed them.
    # Archiving and restoring try it (another worker has the day: skip); an erasure waits for it.
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_lock(%s, %s), true", [_LOCK_NAMESPACE, day.toordinal()])
            acquired = cursor.fetchone()[1]
        else:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_NAMESPACE, day.toordinal()])
            acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_NAMESPACE, day.toordinal()])


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _extend_range(ranges: dict[str, dict], room: str, seq: int, changed: int) -> None:
    """Add a row (rows come ordered by room, sequence) to its room's range in the manifest."""
    span = ranges.get(room)
    if span is None:
        ranges[room] = {"first": seq, "last": seq, "count": 1, "min_changed": changed, "max_changed": changed}
    else:
        span["last"] = seq
        span["count"] += 1
        span["min_changed"] = min(span["min_changed"], changed)
        span["max_changed"] = max(span["max_changed"], changed)


@dataclass
class Built:
    file: tempfile.SpooledTemporaryFile[bytes]
    rows: int
    size: int
    sha256: str
    room_ranges: dict


def _build(day: dt.date) -> Built:
    """Stream the day's partition into a gzip JSON-lines file, ordered by (room, sequence)."""
    out = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024)
    ranges: dict[str, dict] = {}
    rows = 0
    columns = COLUMNS
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Waits for any in-flight edit of this day to commit and keeps new ones out while we read.
            cursor.execute(f'LOCK TABLE "{partition_name(day)}" IN SHARE MODE')
        cursor = connection.chunked_cursor()
        try:
            cursor.execute(f'SELECT {columns} FROM "{partition_name(day)}" ORDER BY room_id, sequence')
            with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as gz:
                while batch := cursor.fetchmany(5000):
                    lines = []
                    for row in batch:
                        mid, room, seq, changed, sender, content, cmid, created, edited, deleted = row[:10]
                        reply_to, reply_count, last_reply_at, reactions, change_kind, attachments, mentions = row[10:]
                        if isinstance(reactions, str):  # Django's cursors hand jsonb over as its text
                            reactions = json.loads(reactions)
                        if isinstance(attachments, str):
                            attachments = json.loads(attachments)
                        if isinstance(mentions, str):
                            mentions = json.loads(mentions)
                        room = str(room)
                        lines.append(
                            json.dumps(
                                [str(mid), room, seq, changed, sender, content, str(cmid)]
                                + [_iso(created), _iso(edited), _iso(deleted)]
                                + [str(reply_to) if reply_to else None, reply_count, _iso(last_reply_at)]
                                + [reactions, change_kind, attachments, mentions],
                                ensure_ascii=False,
                                separators=(",", ":"),
                            )
                        )
                        _extend_range(ranges, room, seq, changed)
                    rows += len(batch)
                    gz.write(("\n".join(lines) + "\n").encode())
        finally:
            cursor.close()
    size = out.tell()
    out.seek(0)
    digest = hashlib.sha256()
    while chunk := out.read(1024 * 1024):
        digest.update(chunk)
    out.seek(0)
    return Built(file=out, rows=rows, size=size, sha256=digest.hexdigest(), room_ranges=ranges)


def _manifest(record: MessageArchive) -> bytes:
    body = {
        "format": FORMAT,
        "fields": FIELDS,
        "day": record.day.isoformat(),
        "partition": record.partition,
        "key": record.key,
        "rows": record.rows,
        "bytes": record.bytes,
        "sha256": record.sha256,
        "rooms": record.room_ranges,
    }
    return json.dumps(body, sort_keys=True, indent=1).encode()


def _verify(record: MessageArchive) -> None:
    """Read the object back: checksum and row count must match what we recorded."""
    storage = archive_storage()
    data = storage.get_bytes(record.key)
    if hashlib.sha256(data).hexdigest() != record.sha256:
        raise ArchiveError(f"{record.key}: checksum mismatch")
    rows = gzip.decompress(data).count(b"\n")
    if rows != record.rows:
        raise ArchiveError(f"{record.key}: {rows} rows read back, {record.rows} expected")
    manifest = json.loads(storage.get_bytes(record.manifest_key))
    if manifest.get("sha256") != record.sha256 or manifest.get("rows") != record.rows:
        raise ArchiveError(f"{record.manifest_key}: manifest does not match the archive")


def _drop_partition(day: dt.date) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE "{PARENT}" DETACH PARTITION "{partition_name(day)}"')
        cursor.execute(f'DROP TABLE "{partition_name(day)}"')


def _save(record: MessageArchive, **changes) -> None:
    for name, value in changes.items():
        setattr(record, name, value)
    record.save()


def archive_day(day: dt.date) -> MessageArchive | None:
    """Archive one day (idempotent; resumes from the recorded step). None if another worker has it."""
    with _day_lock(day) as acquired:
        if not acquired:
            logger.info("archive %s: another worker holds it", day)
            return None
        data_key, manifest_key = object_keys(day)
        record, _ = MessageArchive.objects.get_or_create(
            day=day, defaults={"partition": partition_name(day), "key": data_key, "manifest_key": manifest_key}
        )
        if record.status == MessageArchive.Status.DROPPED:
            return record
        if not partition_exists(day):
            raise ArchiveError(f"{day}: no partition and no finished archive")
        _save(record, attempts=record.attempts + 1, error="")
        try:
            if record.status != MessageArchive.Status.VERIFIED:
                _step("build")
                built = _build(day)
                _step("upload")
                with built.file:
                    archive_storage().put_file(data_key, built.file)
                _save(
                    record,
                    rows=built.rows,
                    bytes=built.size,
                    sha256=built.sha256,
                    room_ranges=built.room_ranges,
                    key=data_key,
                    manifest_key=manifest_key,
                )
                archive_storage().put_file(manifest_key, io.BytesIO(_manifest(record)))
                _save(record, status=MessageArchive.Status.UPLOADED)
                _step("verify")
                _verify(record)
                _save(record, status=MessageArchive.Status.VERIFIED, verified_at=timezone.now())
            else:
                _verify(record)  # a previous run stopped before the drop: check again, then drop
            _step("drop")
            _drop_partition(day)
            _save(record, status=MessageArchive.Status.DROPPED, dropped_at=timezone.now())
        except Exception as error:
            logger.exception("archive %s failed", day)
            metrics.ARCHIVE_DAYS.labels("failed").inc()
            _save(record, status=MessageArchive.Status.FAILED, error=f"{type(error).__name__}: {error}")
            raise
        logger.info("archived %s: %s rows, %s bytes -> %s", day, record.rows, record.bytes, record.key)
        metrics.archived(record.rows, record.bytes)
        return record


def days_to_archive(before: dt.date | None = None) -> list[dt.date]:
    cutoff = min(before, hot_cutoff()) if before else hot_cutoff()
    restored = set(MessageArchive.objects.filter(status=MessageArchive.Status.RESTORED).values_list("day", flat=True))
    return [day for day in partition_days() if day < cutoff and day not in restored]


def archive_due(*, before: dt.date | None = None) -> dict:
    """Archive every day outside the hot window; one failing day does not stop the others."""
    summary: dict = {"archived": [], "failed": [], "skipped": []}
    for day in days_to_archive(before):
        try:
            record = archive_day(day)
        except Exception as error:
            summary["failed"].append((day.isoformat(), str(error)))
            continue
        summary["archived" if record else "skipped"].append(day.isoformat())
    return summary


def verify_day(day: dt.date) -> MessageArchive:
    record = MessageArchive.objects.get(day=day)
    _verify(record)
    return record


def _parse(data: bytes) -> list[list]:
    return [json.loads(line) for line in gzip.decompress(data).splitlines() if line]


def restore_day(day: dt.date) -> MessageArchive:
    """Put an archived day back into PostgreSQL, identical row for row. Holds the day's lock: an
    erasure rewriting the day's object (erase_user) is not read half-way."""
    with _day_lock(day) as acquired:
        if not acquired:
            raise ArchiveError(f"{day} is being archived or rewritten; try again")
        return _restore_day(day)


def _restore_day(day: dt.date) -> MessageArchive:
    record = MessageArchive.objects.get(day=day)
    if record.status != MessageArchive.Status.DROPPED:
        raise ArchiveError(f"{day} is {record.status}, not archived; nothing to restore")
    data = archive_storage().get_bytes(record.key)
    if hashlib.sha256(data).hexdigest() != record.sha256:
        raise ArchiveError(f"{record.key}: checksum mismatch; refusing to restore")
    rows = _parse(data)
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    partition = PostgresTimePartition(
        size=PostgresTimePartitionSize(days=1), start_datetime=start, name_format=NAME_FORMAT
    )
    columns = COLUMNS
    with transaction.atomic():
        with connection.schema_editor() as editor:
            partition.create(Message, cast("PostgresSchemaEditor", editor))  # the psqlextra backend's
        with connection.cursor() as cursor, cursor.cursor.copy(f'COPY "{PARENT}" ({columns}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(_restorable(row))
        _save(record, status=MessageArchive.Status.RESTORED, restored_at=timezone.now())
    _cache.forget(record.key)
    return record


# -- reading archived days -----------------------------------------------------------------------


class ArchiveUnavailable(Unavailable):
    """An archived day is needed and its object cannot be read right now (503, retry)."""

    code = "archive_unavailable"
    message = "Older history is briefly unavailable; please retry."


class _DayCache:
    """A small LRU of decoded archive days: scrolling back fetches each object once."""

    def __init__(self) -> None:
        self._days: OrderedDict[str, dict[str, list[list]]] = OrderedDict()
        self._lock = threading.Lock()
        self.fetches = 0

    def get(self, key: str) -> dict[str, list[list]]:
        with self._lock:
            if key in self._days:
                self._days.move_to_end(key)
                return self._days[key]
        try:
            data = archive_storage().get_bytes(key)
            by_room: dict[str, list[list]] = {}
            for row in _parse(data):
                by_room.setdefault(row[1], []).append(row)
        except Exception as error:  # missing, unreachable, failing or unreadable: not the reader's fault
            logger.warning("archive object %s could not be read: %r", key, error)
            raise ArchiveUnavailable() from error
        with self._lock:
            self.fetches += 1
            self._days[key] = by_room
            while len(self._days) > settings.ARCHIVE_CACHE_DAYS:
                self._days.popitem(last=False)
        return by_room

    def forget(self, key: str) -> None:
        with self._lock:
            self._days.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._days.clear()
            self.fetches = 0


_cache = _DayCache()


def _full(row: list) -> list:
    """A row of any version of the format, with every field (older rows lack the newer ones)."""
    return row + [None, 0, None, None, None, None, None][len(row) - 10 :] if len(row) < len(FIELDS) else row


def _restorable(row: list) -> list:
    """A row as COPY takes it: the reactions, attachments and mentions (JSON) as their text."""
    row = _full(row)

    def text(value: object) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False)

    return row[:13] + [text(row[13]), row[14], text(row[15]), text(row[16])]


def _as_message(row: list) -> Message:
    mid, room, seq, changed, sender, content, cmid, created, edited, deleted = row[:10]
    reply_to, reply_count, last_reply_at, reactions, change_kind, attachments, mentions = _full(row)[10:]
    return Message(
        id=mid,
        room_id=room,
        sequence=seq,
        changed_sequence=changed,
        sender_id=sender,
        content=content,
        client_msg_id=cmid,
        created_at=dt.datetime.fromisoformat(created),
        edited_at=dt.datetime.fromisoformat(edited) if edited else None,
        deleted_at=dt.datetime.fromisoformat(deleted) if deleted else None,
        reply_to=reply_to,
        reply_count=reply_count,
        last_reply_at=dt.datetime.fromisoformat(last_reply_at) if last_reply_at else None,
        reactions=reactions,
        change_kind=change_kind,
        attachments=attachments,
        mentions=mentions,
    )


def archived_records() -> list[MessageArchive]:
    """Every day whose messages live only in the archive store (dropped from PostgreSQL), oldest first."""
    return list(MessageArchive.objects.filter(status=MessageArchive.Status.DROPPED).order_by("day"))


def read_day(record: MessageArchive) -> list[list]:
    """All rows of an archived day, each with every field, checksum checked. Not through the
    readers' cache: a data export or an erasure reads every day once, and must not evict the
    days people are scrolling through."""
    data = archive_storage().get_bytes(record.key)
    if hashlib.sha256(data).hexdigest() != record.sha256:
        raise ArchiveError(f"{record.key}: checksum mismatch")
    return [_full(row) for row in _parse(data)]


def archived_spans(room_id: object) -> list[tuple[str, dict]]:
    """(object key, this room's range) for each archived day holding messages of the room."""
    rows = MessageArchive.objects.filter(
        status=MessageArchive.Status.DROPPED, room_ranges__has_key=str(room_id)
    ).values_list("key", "room_ranges")
    return [(key, ranges[str(room_id)]) for key, ranges in rows]


def archived_messages(room_id: object, keys: list[str]) -> list[Message]:
    room = str(room_id)
    return [_as_message(row) for key in keys for row in _cache.get(key).get(room, [])]


def find_archived(room_id: object, message_id: object) -> bool:
    wanted = str(message_id)
    for key, _span in archived_spans(room_id):
        if any(row[0] == wanted for row in _cache.get(key).get(str(room_id), [])):
            return True
    return False


# -- account erasure in archived days (accounts.erasure; the rule: messaging.erasure) -------------


def _as_row(message: Message) -> list:
    """A message as an archive row (FIELDS order): the inverse of _as_message."""
    return [
        str(message.id),
        str(message.room_id),
        message.sequence,
        message.changed_sequence,
        message.sender_id,
        message.content,
        str(message.client_msg_id),
        _iso(message.created_at),
        _iso(message.edited_at),
        _iso(message.deleted_at),
        str(message.reply_to) if message.reply_to else None,
        message.reply_count,
        _iso(message.last_reply_at),
        message.reactions,
        message.change_kind,
        message.attachments,
        message.mentions,
    ]


def _encode(rows: list[list]) -> bytes:
    lines = "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows)
    return gzip.compress(lines.encode(), compresslevel=6, mtime=0)


def erase_user(*, user_id: int, mode: str) -> tuple[int, int]:
    """An account erasure, in the archive: every archived day holding a message `user_id` sent or a
    reaction they gave is rewritten (messaging.erasure's rule), so no store keeps what was erased.
    Each day waits for its lock (an archive run or a restore of it finishes first). A day archived
    but not yet dropped (`verified`) may have been built before the erasure changed its partition:
    it is sent back to `pending`, so the next run builds it again from PostgreSQL. Returns (days
    rewritten, messages changed)."""
    days = changed = 0
    for day in MessageArchive.objects.order_by("day").values_list("day", flat=True):
        with _day_lock(day, wait=True):
            record = MessageArchive.objects.get(day=day)
            if record.status == MessageArchive.Status.VERIFIED:
                _save(record, status=MessageArchive.Status.PENDING)
            elif record.status == MessageArchive.Status.DROPPED:
                count = _erase_in_day(record, user_id=user_id, mode=mode)
                days, changed = days + (count > 0), changed + count
    return days, changed


def _erase_in_day(record: MessageArchive, *, user_id: int, mode: str) -> int:
    """Rewrite one archived day without `user_id`'s data. The new object goes under new keys (the
    readers' caches are by key: none serves the old rows once the record names the new ones); the
    old objects are deleted after commit. Each changed message takes its room's next number, as an
    edit would, so sync from an older cursor returns it (the manifest's max_changed moves with it);
    its change is announced after commit."""
    from attachments import binding as attachment_binding
    from core.events import dumps, room_group, send_events
    from messaging.erasure import erase_in_message, reacted
    from messaging.payloads import change_frame

    rows = read_day(record)
    now = timezone.now()
    changed: dict[int, Message] = {}
    tombstoned: list[Message] = []
    for index, row in enumerate(rows):
        if row[4] != user_id and not reacted(row[13], user_id):
            continue
        message = _as_message(row)
        was_live = message.deleted_at is None
        if erase_in_message(message, user_id=user_id, mode=mode, now=now):
            changed[index] = message
            if was_live and message.deleted_at is not None:
                tombstoned.append(message)
    if not changed:
        return 0
    by_room: dict[str, list[int]] = {}
    for index in changed:
        by_room.setdefault(rows[index][1], []).append(index)
    old_keys = (record.key, record.manifest_key)
    with transaction.atomic():
        with connection.cursor() as cursor:
            for room in sorted(by_room):  # rooms in one order: two erasures never wait on each other in a cycle
                indexes = by_room[room]
                cursor.execute(
                    "UPDATE rooms_room SET last_sequence = last_sequence + %s WHERE id = %s RETURNING last_sequence",
                    [len(indexes), room],
                )
                found = cursor.fetchone()
                for offset, index in enumerate(indexes):
                    if found is not None:  # a deleted room's rows keep their numbers: nobody syncs it
                        changed[index].changed_sequence = found[0] - len(indexes) + 1 + offset
                    rows[index] = _as_row(changed[index])
        ranges: dict[str, dict] = {}
        for row in rows:
            _extend_range(ranges, row[1], row[2], row[3])
        data = _encode(rows)
        revision = uuid.uuid4().hex[:12]
        data_key = object_keys(record.day)[0].replace(".jsonl.gz", f".{revision}.jsonl.gz")
        manifest_key = data_key.replace(".jsonl.gz", ".manifest.json")
        archive_storage().put_file(data_key, io.BytesIO(data))
        _save(
            record,
            key=data_key,
            manifest_key=manifest_key,
            bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            room_ranges=ranges,
        )
        archive_storage().put_file(manifest_key, io.BytesIO(_manifest(record)))
        for message in tombstoned:  # their files leave the store after commit
            attachment_binding.release(room_id=message.room_id, message_id=message.id)
        send_events(
            [
                (
                    [room_group(message.room_id)],
                    {
                        "type": "room.sequenced",
                        "room": str(message.room_id),
                        "seq": message.changed_sequence,
                        "text": dumps(change_frame(message)),
                    },
                )
                for message in changed.values()
            ]
        )

        def forget_old() -> None:
            _cache.forget(old_keys[0])
            for key in old_keys:
                archive_storage().delete(key)

        transaction.on_commit(forget_old)
    logger.info("erasure rewrote archived day %s: %s messages changed -> %s", record.day, len(changed), data_key)
    return len(changed)
