"""GDPR "download all my data" (audit.data_export): a Celery task builds the zip with progress, only
its owner can see and download it, and requests, completions and downloads are audited."""

import json

import pytest
from django.test import override_settings

from audit.data_export import zip_listing
from audit.models import AuditEntry
from config.celery_app import app as celery_app
from messaging.archive_storage import archive_storage
from messaging.services import reaction_set
from rooms.selectors import membership_get
from rooms.services import membership_add, room_create
from tests.conftest import client_for, send_message


@pytest.fixture
def eager(monkeypatch):
    """Tasks queued with apply_async run at once, in this process, through Celery's tracer."""
    monkeypatch.setattr(celery_app.conf, "task_always_eager", True)


@pytest.fixture
def local_store(tmp_path):
    with override_settings(S3_BUCKET="", ARCHIVE_LOCAL_DIR=str(tmp_path)):
        archive_storage.cache_clear()
        yield tmp_path
    archive_storage.cache_clear()


@pytest.mark.django_db
def test_a_user_downloads_all_their_data_built_by_a_task_and_no_one_else_can(
    make_user, eager, local_store, django_capture_on_commit_callbacks
):
    ada, bob = make_user("ada"), make_user("bob")
    room = room_create(creator=bob, name="Crew")
    membership_add(actor=membership_get(room_id=room.pk, user=bob), user=ada, role="member")
    mine = send_message(room, ada, "words of ada")
    theirs = send_message(room, bob, "words of bob")
    reaction_set(user=ada, room_id=room.pk, message_id=theirs.id, emoji="👍", present=True)
    api = client_for(ada)

    with django_capture_on_commit_callbacks(execute=True):
        started = api.post("/api/v1/me/data-export/")
    assert (started.status_code, started.json()["status"]) == (202, "queued")
    url = f"/api/v1/me/data-export/{started.json()['id']}/"

    export = api.get(url).json()
    assert export["status"] == "ready" and export["progress_done"] == export["progress_total"] > 0
    download = api.get(url + "download/")
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    files = zip_listing(download.content)
    assert set(files) == {
        "README.txt",
        "profile.json",
        "memberships.json",
        "messages.jsonl",
        "reactions.json",
        "attachments.json",
        "audit.jsonl",
    }
    profile = json.loads(files["profile.json"])
    assert profile["username"] == "ada" and "password" not in profile
    messages = [json.loads(line) for line in files["messages.jsonl"].decode().splitlines()]
    assert [(m["id"], m["content"]) for m in messages] == [(str(mine.id), "words of ada")]  # only hers
    assert json.loads(files["reactions.json"]) == [{"message": str(theirs.id), "room": str(room.pk), "emoji": "👍"}]
    assert [m["role"] for m in json.loads(files["memberships.json"])] == ["member"]
    about = [json.loads(line)["action"] for line in files["audit.jsonl"].decode().splitlines()]
    assert about == ["gdpr.export_requested", "membership.add"]  # chain by chain: global, then the workspace's

    for other in (client_for(bob).get(url), client_for(bob).get(url + "download/")):
        assert (other.status_code, other.json()["error"]["code"]) == (404, "not_found")
    audited = list(
        AuditEntry.objects.filter(action__startswith="gdpr.").order_by("position").values_list("action", "actor_id")
    )
    assert audited == [
        ("gdpr.export_requested", ada.pk),
        ("gdpr.export_ready", None),
        ("gdpr.export_downloaded", ada.pk),
    ]


@pytest.mark.django_db
def test_one_export_at_a_time_and_not_before_it_is_ready(make_user, local_store):
    api = client_for(make_user("ada"))
    first = api.post("/api/v1/me/data-export/")  # queued: its task is sent only after commit
    again = api.post("/api/v1/me/data-export/")
    early = api.get(f"/api/v1/me/data-export/{first.json()['id']}/download/")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "export_running")
    assert (early.status_code, early.json()["error"]["code"]) == (409, "not_ready")
    assert api.get("/api/v1/me/data-export/not-a-uuid/").status_code == 404
