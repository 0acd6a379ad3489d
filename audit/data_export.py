"""GDPR "download all my data": a zip of JSON files built by a Celery task (audit.tasks) with
progress, kept in the archive store (messaging.archive_storage: S3 or ARCHIVE_LOCAL_DIR), fetched
by its owner over REST. Requests, completions and downloads are recorded in the audit log.

What the zip holds (docs/audit.md "Download all my data"): profile.json (the account's fields,
never the password hash), memberships.json, messages.jsonl (every message the user sent, from
PostgreSQL and from the archived days in the archive store, texts included: they are the user's
own), reactions.json (the user's reactions, archived days included), attachments.json and files/
(the files they uploaded, their bytes from the attachment store), audit.jsonl (audit entries by or
about the user), README.txt."""

import datetime as dt
import io
import json
import logging
import tempfile
import uuid
import zipfile
from collections.abc import Iterable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

import audit
from accounts.models import User
from attachments.models import Attachment
from attachments.storage import attachment_store
from audit.models import AuditEntry, DataExport
from audit.services import entry_line
from core.errors import Conflict, NotFound
from messaging import archive
from messaging.archive_storage import archive_storage
from messaging.models import Message
from rooms.models import Membership

logger = logging.getLogger(__name__)

ACTIVE = (DataExport.Status.QUEUED, DataExport.Status.RUNNING)
_CHUNK = 500  # rows between two progress writes
_README = """Your data from Parley, exported on {when} (UTC).

profile.json      your account (no password)
memberships.json  the rooms you are in and your role there
messages.jsonl    every message you sent, one JSON object a line, oldest first: those of days
                  moved to the archive ("archived": true), then those in the live database;
                  deleted messages appear as tombstones without text
reactions.json    the reactions you gave, by message
attachments.json  the files you uploaded (name, type, size, room, message) and where each is in
                  this zip: files/<attachment id>/<name>
audit.jsonl       audit log entries about you or by you (sign-ins, membership changes, ...)
"""


def _export_id(value: object) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise NotFound() from None


@transaction.atomic
def data_export_start(*, user: User) -> DataExport:
    """Queue an export of everything Parley holds about `user`; one at a time per user."""
    User.objects.select_for_update().filter(pk=user.pk).first()  # two requests at once: one export
    if DataExport.objects.filter(user=user, status__in=ACTIVE).exists():
        raise Conflict("An export of your data is already being prepared.", code="export_running")
    export = DataExport.objects.create(user=user)
    audit.record(action="gdpr.export_requested", actor=user, target=export)
    transaction.on_commit(lambda: _enqueue(export))
    return export


def _enqueue(export: DataExport) -> None:
    from audit import tasks

    try:
        tasks.build_data_export.apply_async(args=[str(export.pk)])
    except Exception as error:  # the broker is away: say so rather than leave it queued
        logger.exception("could not queue data export %s", export.pk)
        _fail(export.pk, f"Could not be queued: {error}")


def data_export_get(*, user: User, export_id: object) -> DataExport:
    """One of `user`'s exports; anyone else's is not found."""
    export = DataExport.objects.filter(pk=_export_id(export_id), user=user).first()
    if export is None:
        raise NotFound()
    return export


def data_export_download(*, user: User, export_id: object) -> tuple[DataExport, bytes]:
    """The zip of one of `user`'s ready exports (each download is recorded)."""
    export = data_export_get(user=user, export_id=export_id)
    if export.status != DataExport.Status.READY:
        raise Conflict("This export is not ready.", code="not_ready")
    data = archive_storage().get_bytes(export.key)
    audit.record(action="gdpr.export_downloaded", actor=user, target=export, after={"size": len(data)})
    return export, data


# -- the task's work -------------------------------------------------------------------------------


def _progress(export_id: uuid.UUID, done: int, total: int, note: str) -> None:
    DataExport.objects.filter(pk=export_id).update(progress_done=done, progress_total=total, progress_note=note)


def _fail(export_id: uuid.UUID, error: str) -> None:
    DataExport.objects.filter(pk=export_id, status__in=ACTIVE).update(
        status=DataExport.Status.FAILED, error=error[:2000], finished_at=timezone.now()
    )


def _json(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False, sort_keys=True)


def _profile(user: User) -> dict[str, Any]:
    fields = {field.attname: getattr(user, field.attname) for field in user._meta.concrete_fields}
    fields.pop("password", None)
    return fields


def _about(user: User) -> Q:
    return Q(actor_id=user.pk) | Q(target_type="user", target_id=str(user.pk))


def build(export_id: object) -> str:
    """Build one queued export (the Celery task). Returns its final status."""
    pk = _export_id(export_id)
    claimed = DataExport.objects.filter(pk=pk, status=DataExport.Status.QUEUED).update(status=DataExport.Status.RUNNING)
    if not claimed:
        return "not queued"
    export = DataExport.objects.select_related("user").get(pk=pk)
    try:
        _write(export)
    except Exception as error:
        logger.exception("data export %s failed", pk)
        _fail(pk, f"{type(error).__name__}: {error!s:.500}")
        return DataExport.Status.FAILED
    return DataExport.Status.READY


_MESSAGE_FIELDS = ("id", "room_id", "sequence", "created_at", "edited_at", "deleted_at", "content", "reply_to")


def _archived_message(row: list) -> dict[str, Any]:
    """A message of an archived day (messaging.archive.FIELDS order) as messages.jsonl has it."""
    deleted = row[9] is not None
    created, edited, gone = (dt.datetime.fromisoformat(value) if value else None for value in row[7:10])
    values = (row[0], row[1], row[2], created, edited, gone, "" if deleted else row[5], row[10])
    return dict(zip(_MESSAGE_FIELDS, values, strict=True)) | {"archived": True}


def _reactions_of(user: User, message_id: object, room_id: object, reactions: Any) -> list[dict[str, Any]]:
    return [
        {"message": str(message_id), "room": str(room_id), "emoji": reaction["emoji"]}
        for reaction in reactions or ()
        if any(isinstance(u, dict) and u.get("id") == user.pk for u in reaction.get("users", ()))
    ]


def _file_name(attachment: Attachment) -> str:
    """Where an attachment's bytes go in the zip: its own folder, its name without path parts."""
    name = attachment.name.replace("\\", "/").rsplit("/", 1)[-1].strip(". ") or "file"
    return f"files/{attachment.pk}/{name}"


def _write(export: DataExport) -> dict[str, int]:
    user = export.user
    messages = Message.objects.filter(sender=user).order_by("created_at")
    reacted = Message.objects.filter(reactions__contains=[{"users": [{"id": user.pk}]}]).order_by("created_at")
    entries = AuditEntry.objects.filter(_about(user)).order_by("scope", "position")
    days = archive.archived_records()
    files = list(Attachment.objects.filter(uploader=user, status=Attachment.Status.READY).order_by("created_at", "pk"))
    # Progress counts rows in PostgreSQL, archived days (one object read each) and files.
    total = messages.count() + entries.count() + len(days) + len(files) + 3
    done = 0

    def advance(rows: Iterable[Any], note: str) -> Iterable[Any]:
        nonlocal done
        for row in rows:
            yield row
            done += 1
            if done % _CHUNK == 0:
                _progress(export.pk, done, total, note)

    _progress(export.pk, 0, total, "profile")
    counts = {"messages": 0, "archived_messages": 0, "reactions": 0, "files": 0, "audit_entries": 0}
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
            zipped.writestr("README.txt", _README.format(when=timezone.now().strftime("%Y-%m-%d %H:%M")))
            zipped.writestr("profile.json", _json(_profile(user)))
            memberships = Membership.objects.filter(user=user).select_related("room").order_by("joined_at")
            zipped.writestr(
                "memberships.json",
                _json(
                    [
                        {"room": m.room_id, "name": m.room.name, "role": m.role, "joined_at": m.joined_at}
                        for m in memberships
                    ]
                ),
            )
            done += 3
            reactions: list[dict[str, Any]] = []
            with zipped.open("messages.jsonl", "w") as out:
                # Archived days first (they are the oldest), one object each, read as restore
                # reads them (checksum checked); then what is in PostgreSQL.
                for record in days:
                    for row in archive.read_day(record):
                        if row[4] == user.pk:
                            out.write((_json(_archived_message(row)) + "\n").encode())
                            counts["archived_messages"] += 1
                        reactions += _reactions_of(user, row[0], row[1], row[13])
                    done += 1
                    _progress(export.pk, done, total, f"archived day {record.day.isoformat()}")
                for row in advance(messages.values(*_MESSAGE_FIELDS).iterator(chunk_size=_CHUNK), "messages"):
                    out.write((_json(row) + "\n").encode())
                    counts["messages"] += 1
            for message in reacted.values("id", "room_id", "reactions").iterator(chunk_size=_CHUNK):
                reactions += _reactions_of(user, message["id"], message["room_id"], message["reactions"])
            counts["reactions"] = len(reactions)
            zipped.writestr("reactions.json", _json(reactions))
            listed = []
            for attachment in files:
                name = _file_name(attachment)
                zipped.writestr(name, attachment_store().read(attachment.key()))
                listed.append(
                    {
                        "id": attachment.pk,
                        "name": attachment.name,
                        "content_type": attachment.content_type,
                        "size": attachment.size,
                        "room": attachment.room_id,
                        "message": attachment.message_id,
                        "uploaded_at": attachment.created_at,
                        "file": name,
                    }
                )
                counts["files"] += 1
                done += 1
                _progress(export.pk, done, total, "files")
            zipped.writestr("attachments.json", _json(listed))
            with zipped.open("audit.jsonl", "w") as out:
                for row in advance(entries.values().iterator(chunk_size=_CHUNK), "audit entries"):
                    out.write(entry_line(row).encode())
                    counts["audit_entries"] += 1
        size = spool.tell()
        spool.seek(0)
        key = f"exports/{user.pk}/{export.pk}.zip"
        archive_storage().put_file(key, spool)
    with transaction.atomic():
        DataExport.objects.filter(pk=export.pk).update(
            status=DataExport.Status.READY,
            key=key,
            size=size,
            finished_at=timezone.now(),
            progress_done=total,
            progress_total=total,
            progress_note="ready",
        )
        audit.record(action="gdpr.export_ready", actor=None, target=export, after={"size": size, **counts})
    return counts


def zip_listing(data: bytes) -> dict[str, bytes]:
    """The files of an export's zip (for tests and support)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}
