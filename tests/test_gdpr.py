"""GDPR (issue 18): the data export holds archived days and uploaded files."""

import json

import pytest
from django.utils import timezone

from attachments.models import Attachment
from attachments.storage import attachment_store
from audit.data_export import zip_listing
from audit.models import AuditEntry
from config.celery_app import app as celery_app
from messaging import archive
from messaging.models import MessageArchive
from messaging.services import reaction_set
from tests.conftest import client_for, room_with, send_message
from tests.test_archive import OLD, age, make_partition, s3, s3_server  # noqa: F401


@pytest.fixture
def eager(monkeypatch):
    """Tasks queued run at once, in this process, through Celery's tracer."""
    monkeypatch.setattr(celery_app.conf, "task_always_eager", True)


@pytest.fixture
def store(s3):  # noqa: F811 (the fixture imported above)
    """The archive and the attachments in moto's S3 server; OLD's partition made, and dropped after."""
    attachment_store.cache_clear()
    make_partition(OLD)
    yield s3
    attachment_store.cache_clear()
    if archive.partition_exists(OLD):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(f'DROP TABLE "{archive.partition_name(OLD)}"')


def stored_file(user, room, name: str, data: bytes) -> Attachment:
    """A completed upload of `user`'s, its bytes in the attachment store."""
    attachment = Attachment.objects.create(
        room=room,
        uploader=user,
        name=name,
        declared_type="text/plain",
        declared_size=len(data),
        status=Attachment.Status.READY,
        size=len(data),
        content_type="text/plain",
        completed_at=timezone.now(),
    )
    attachment_store().put(attachment.key(), data, "text/plain")
    return attachment


def archive_old_day(room_ids) -> None:
    """Move what the rooms hold now to OLD (9 days ago) and archive that day (dropped from PostgreSQL)."""
    age(room_ids, 9)
    assert archive.archive_day(OLD).status == MessageArchive.Status.DROPPED


# -- the data export is complete ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_export_holds_messages_of_archived_days_and_the_bytes_of_uploaded_files(make_user, store, eager):
    ada, bob = make_user("ada"), make_user("bob")
    crew = room_with(ada, "Crew", members={bob: "member"})
    old_hers = send_message(crew, ada, "words from the archive")
    old_bobs = send_message(crew, bob, "bob's old words")
    reaction_set(user=ada, room_id=crew.pk, message_id=old_bobs.id, emoji="👍", present=True)
    archive_old_day([crew.pk])
    hot = send_message(crew, ada, "words of today")
    notes = stored_file(ada, crew, "../notes.txt", b"ada's own notes")
    api = client_for(ada)

    started = api.post("/api/v1/me/data-export/")
    export = api.get(f"/api/v1/me/data-export/{started.json()['id']}/").json()
    assert export["status"] == "ready" and export["progress_done"] == export["progress_total"]
    files = zip_listing(api.get(f"/api/v1/me/data-export/{export['id']}/download/").content)

    messages = [json.loads(line) for line in files["messages.jsonl"].decode().splitlines()]
    assert [(m["id"], m["content"], m.get("archived", False)) for m in messages] == [
        (str(old_hers.id), "words from the archive", True),
        (str(hot.id), "words of today", False),
    ]
    assert json.loads(files["reactions.json"]) == [{"message": str(old_bobs.id), "room": str(crew.pk), "emoji": "👍"}]
    assert files[f"files/{notes.pk}/notes.txt"] == b"ada's own notes"
    listed = json.loads(files["attachments.json"])
    assert [(f["name"], f["file"]) for f in listed] == [("../notes.txt", f"files/{notes.pk}/notes.txt")]
    ready = AuditEntry.objects.get(action="gdpr.export_ready").after
    assert (ready["archived_messages"], ready["messages"], ready["files"]) == (1, 1, 1)
