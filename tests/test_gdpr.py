"""GDPR (issue 18): the data export holds archived days and uploaded files; account erasure from
REST, the account page and the admin removes personal data at once and tombstones or anonymises
the person's messages everywhere, archived days included (read back after the erasure)."""

import json
import uuid

import pytest
from django.contrib.sessions.models import Session
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.erasure import account_erase
from accounts.models import User
from attachments.models import Attachment
from attachments.storage import attachment_store
from audit.data_export import zip_listing
from audit.models import AuditEntry, Erasure
from boards.comments import comment_create
from boards.services import board_create
from config.celery_app import app as celery_app
from core.errors import NotFound
from messaging import archive
from messaging.models import Message, MessageArchive
from messaging.services import message_send, reaction_set
from notifications.models import Notification
from rooms.models import Membership, Room
from rooms.services import direct_room_get_or_create
from tests.conftest import client_for, room_with, send_message
from tests.test_archive import OLD, age, keys_in, make_partition, page_back, page_changes, s3, s3_server  # noqa: F401
from tests.test_audit import verify
from workspaces.models import WorkspaceMembership
from workspaces.services import workspace_create

PASSWORD = "correct-horse-battery"


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


# -- account erasure ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_user_erases_their_account_over_rest_and_it_is_gone_everywhere_archived_days_included(
    make_user, store, eager, events
):
    client, bucket = store
    ada = make_user("ada")  # ada@example.com
    bob, cyd = make_user("bob"), make_user("cyd")
    crew = room_with(ada, "Crew", members={bob: "member", cyd: "admin"})
    solo = room_with(ada, "Solo")
    labs = workspace_create(creator=ada, name="Ada Labs").workspace
    WorkspaceMembership.objects.create(workspace=labs, user=cyd, role="admin")
    direct, _ = direct_room_get_or_create(user=ada, other=bob)
    old_hers = send_message(crew, ada, "ada in the archive")
    old_bobs = send_message(crew, bob, "bob in the archive")
    reaction_set(user=ada, room_id=crew.pk, message_id=old_bobs.id, emoji="👍", present=True)
    archive_old_day([crew.pk])
    old_key = MessageArchive.objects.get(day=OLD).key
    upload = stored_file(ada, crew, "ada.txt", b"ada's file")
    hers, _ = message_send(
        user=ada, room_id=crew.pk, content="ada today", client_msg_id=uuid.uuid4(), attachments=[str(upload.pk)]
    )
    bobs = send_message(crew, bob, "hello @ada")
    reaction_set(user=ada, room_id=crew.pk, message_id=bobs.id, emoji="🎉", present=True)
    send_message(direct, ada, "psst")
    plan = board_create(user=ada, room_id=crew.pk, title="Plan")
    note = comment_create(user=ada, board_id=plan.pk, body="ada's note", x=1, y=2)
    tokens = APIClient().post("/api/v1/auth/token/", {"username": "ada", "password": PASSWORD}, format="json").json()
    cursor = Room.objects.get(pk=crew.pk).last_sequence
    other_browser = Client()
    other_browser.force_login(ada)
    other_session = other_browser.session.session_key
    api = client_for(ada)

    refused = api.delete("/api/v1/me/", {"password": "not it"}, format="json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "wrong_password")
    assert User.objects.get(pk=ada.pk).is_active and not Erasure.objects.exists()

    events.clear()
    assert api.delete("/api/v1/me/", {"password": PASSWORD}, format="json").status_code == 204

    # The account: nothing personal left, and no way in.
    ada.refresh_from_db()
    assert (ada.username, ada.email, ada.display_name, ada.is_active, ada.has_usable_password()) == (
        f"deleted-{ada.pk}",
        "",
        "Deleted user",
        False,
        False,
    )
    assert not Client().login(username="ada", password=PASSWORD)
    assert (
        APIClient().post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json").status_code
        == 401
    )
    assert not Notification.objects.filter(user=ada).exists()
    assert not Session.objects.filter(session_key=other_session).exists()  # deleted by the task
    assert other_browser.get("/account/").status_code == 302  # signed out
    # Rooms: out of all; her room goes to the admin, the one nobody else was in is gone.
    assert not Membership.objects.filter(user=ada).exists()
    assert Membership.objects.get(room=crew, user=cyd).role == "owner"
    assert not Room.objects.filter(pk=solo.pk).exists()
    assert Room.objects.get(pk=direct.pk).name == "bob, Deleted user"
    # Workspaces: out of all; hers goes to its admin.
    assert not WorkspaceMembership.objects.filter(user=ada).exists()
    assert WorkspaceMembership.objects.get(workspace=labs, user=cyd).role == "owner"
    # Messages in PostgreSQL: a tombstone without sender or file; her reaction gone from bob's.
    now = Message.objects.get(id=hers.id)
    assert (now.sender_id, now.content, now.deleted_at is not None, now.attachments) == (None, "", True, None)
    assert Attachment.objects.get(pk=upload.pk).status == Attachment.Status.DELETED
    assert Message.objects.get(id=bobs.id).reactions is None
    note.refresh_from_db()
    assert (note.author_id, note.body, note.deleted_at is not None) == (None, "", True)
    # Live, as numbered changes.
    deleted = {frame["message"]["id"] for frame in events.frames("message.delete", group=f"room.{crew.pk}")}
    assert {str(hers.id), str(old_hers.id)} <= deleted
    updated = {frame["message"]["id"]: frame["message"] for frame in events.frames("message.update")}
    assert updated[str(bobs.id)]["reactions"] == [] and updated[str(old_bobs.id)]["reactions"] == []

    # The archived day, read back as members read it: paging back, sync from an older cursor.
    history = {message["id"]: message for message in page_back(client_for(bob), crew)}
    assert (history[str(old_hers.id)]["sender"], history[str(old_hers.id)]["content"]) == (None, "")
    assert history[str(old_hers.id)]["deleted"] and history[str(old_bobs.id)]["reactions"] == []
    synced = {frame["message"]["id"]: frame["type"] for frame in page_changes(client_for(bob), crew, after=cursor)}
    assert synced[str(old_hers.id)] == "message.delete" and synced[str(old_bobs.id)] == "message.update"
    # Its object was rewritten (the old one is gone from the store), verifies, and restores erased.
    record = MessageArchive.objects.get(day=OLD)
    assert record.key != old_key and old_key not in keys_in(client, bucket) and record.key in keys_in(client, bucket)
    archive.verify_day(OLD)
    archive.restore_day(OLD)
    restored = Message.objects.get(id=old_hers.id)
    assert (restored.sender_id, restored.content) == (None, "")

    # Audited, without what was erased; the chain holds.
    entry = AuditEntry.objects.get(action="gdpr.erase")
    assert (entry.actor_id, entry.target_id, entry.after["mode"], entry.after["via"]) == (
        ada.pk,
        str(ada.pk),
        "delete",
        "api",
    )
    written = json.dumps([entry.actor_username, entry.before, entry.after])
    assert "ada" not in written and "example.com" not in written
    finished = AuditEntry.objects.get(action="gdpr.erase_finished").after
    assert (finished["archived_days"], finished["archived_messages"]) == (1, 2)
    assert Erasure.objects.get(user=ada).status == Erasure.Status.DONE
    assert "global: ok" in verify()


@pytest.mark.django_db(transaction=True)
@override_settings(ERASURE_MESSAGES="anonymise")
def test_staff_erase_an_account_from_admin_and_anonymised_messages_keep_their_text(make_user, store, eager, events):
    staff = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    ada, bob = make_user("ada"), make_user("bob")
    crew = room_with(bob, "Crew", members={ada: "member"})
    old = send_message(crew, ada, "old words")
    archive_old_day([crew.pk])
    hot = send_message(crew, ada, "new words")
    admin = Client()
    admin.force_login(staff)

    asked = admin.post("/admin/accounts/user/", {"action": "erase_accounts", "_selected_action": [ada.pk]})
    assert asked.status_code == 200 and b"Yes, erase 1 account" in asked.content
    assert User.objects.get(pk=ada.pk).is_active  # nothing until confirmed
    done = admin.post(
        "/admin/accounts/user/", {"action": "erase_accounts", "_selected_action": [ada.pk], "confirm": "yes"}
    )
    assert done.status_code == 302 and not User.objects.get(pk=ada.pk).is_active

    now = Message.objects.get(id=hot.id)
    assert (now.sender_id, now.content, now.deleted_at) == (None, "new words", None)
    history = {message["id"]: message for message in page_back(client_for(bob), crew)}
    assert (history[str(old.id)]["sender"], history[str(old.id)]["content"]) == (None, "old words")
    updated = {frame["message"]["id"] for frame in events.frames("message.update", group=f"room.{crew.pk}")}
    assert {str(hot.id), str(old.id)} <= updated
    entry = AuditEntry.objects.get(action="gdpr.erase")
    assert (entry.actor_username, entry.after["via"], entry.after["mode"]) == ("root", "admin", "anonymise")


@pytest.mark.django_db
def test_the_account_page_erases_only_after_confirmation_and_no_one_else_may(
    make_user, eager, django_capture_on_commit_callbacks
):
    ada, bob = make_user("ada"), make_user("bob")
    with pytest.raises(NotFound):  # not staff: someone else's account is not theirs to know of
        account_erase(actor=bob, user=ada, via="api")
    page = Client()
    page.force_login(ada)

    unconfirmed = page.post("/account/", {"form": "erase", "erase-password": PASSWORD})
    wrong = page.post("/account/", {"form": "erase", "erase-password": "nope", "erase-confirm": "on"})
    assert (unconfirmed.status_code, wrong.status_code) == (400, 400)
    assert b"Tick the box to confirm." in unconfirmed.content and b"Your password is not right." in wrong.content
    assert User.objects.get(pk=ada.pk).is_active

    with django_capture_on_commit_callbacks(execute=True):
        done = page.post("/account/", {"form": "erase", "erase-password": PASSWORD, "erase-confirm": "on"})
    assert (done.status_code, done["Location"]) == (302, "/login/")
    assert page.get("/account/").status_code == 302  # signed out
    assert User.objects.get(pk=ada.pk).username == f"deleted-{ada.pk}"
    assert Erasure.objects.get(user=ada).status == Erasure.Status.DONE
