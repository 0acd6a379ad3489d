"""GDPR "download all my data": a zip of JSON files built by a Celery task (audit.tasks) with
progress, kept in the archive store (messaging.archive_storage: S3 or ARCHIVE_LOCAL_DIR), fetched
by its owner over REST. Requests, completions and downloads are recorded in the audit log.

What the zip holds (docs/audit.md "Download all my data"): profile.json (the account's fields,
never the password hash), memberships.json, messages.jsonl (every message the user sent that is
in PostgreSQL, texts included: they are the user's own), reactions.json (the user's reactions),
audit.jsonl (audit entries by or about the user), README.txt."""

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
from audit.models import AuditEntry, DataExport
from audit.services import entry_line
from core.errors import Conflict, NotFound
from messaging.archive_storage import archive_storage
from messaging.models import Message
from rooms.models import Membership

logger = logging.getLogger(__name__)

ACTIVE = (DataExport.Status.QUEUED, DataExport.Status.RUNNING)
_CHUNK = 500  # rows between two progress writes
_README = """Your data from Parley, exported on {when} (UTC).

profile.json      your account (no password)
memberships.json  the rooms you are in and your role there
messages.jsonl    every message you sent that is still in the live database (one JSON object a
                  line; deleted messages appear as tombstones without text). Days older than the
                  live window are archived and are not included in this export.
reactions.json    the reactions you gave, by message
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


def _write(export: DataExport) -> dict[str, int]:
    user = export.user
    messages = Message.objects.filter(sender=user).order_by("created_at")
    reacted = Message.objects.filter(reactions__contains=[{"users": [{"id": user.pk}]}]).order_by("created_at")
    entries = AuditEntry.objects.filter(_about(user)).order_by("scope", "position")
    total = messages.count() + entries.count() + 3
    done = 0

    def advance(rows: Iterable[Any], note: str) -> Iterable[Any]:
        nonlocal done
        for row in rows:
            yield row
            done += 1
            if done % _CHUNK == 0:
                _progress(export.pk, done, total, note)

    _progress(export.pk, 0, total, "profile")
    counts = {"messages": 0, "reactions": 0, "audit_entries": 0}
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("README.txt", _README.format(when=timezone.now().strftime("%Y-%m-%d %H:%M")))
            archive.writestr("profile.json", _json(_profile(user)))
            memberships = Membership.objects.filter(user=user).select_related("room").order_by("joined_at")
            archive.writestr(
                "memberships.json",
                _json(
                    [
                        {"room": m.room_id, "name": m.room.name, "role": m.role, "joined_at": m.joined_at}
                        for m in memberships
                    ]
                ),
            )
            done += 3
            with archive.open("messages.jsonl", "w") as out:
                fields = (
                    "id",
                    "room_id",
                    "sequence",
                    "created_at",
                    "edited_at",
                    "deleted_at",
                    "content",
                    "reply_to",
                )
                for row in advance(messages.values(*fields).iterator(chunk_size=_CHUNK), "messages"):
                    out.write((_json(row) + "\n").encode())
                    counts["messages"] += 1
            reactions = []
            for message in reacted.values("id", "room_id", "reactions").iterator(chunk_size=_CHUNK):
                for reaction in message["reactions"] or ():
                    if any(isinstance(u, dict) and u.get("id") == user.pk for u in reaction.get("users", ())):
                        reactions.append(
                            {"message": message["id"], "room": message["room_id"], "emoji": reaction["emoji"]}
                        )
            counts["reactions"] = len(reactions)
            archive.writestr("reactions.json", _json(reactions))
            with archive.open("audit.jsonl", "w") as out:
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
