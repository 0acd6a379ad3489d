"""Attachments (issue 16, docs/attachments.md): presigned uploads straight to a real S3 API (moto's
server, as the archive tests), completion that checks size and sniffed type, sending with a
message, thumbnails by the task (a real PNG and a corrupt one), member-only downloads, and
removal from the store with the message."""

import io
import json
import struct
import uuid
import zlib
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase, override_settings
from PIL import Image

from attachments import services as attachment_services
from attachments import tasks
from attachments.models import Attachment
from attachments.storage import attachment_store
from messaging import archive
from rooms.models import Room
from tests.conftest import client_for, room_with
from tests.sockets import TIMEOUT, connect, receive_type
from tests.test_archive import keys_in, s3, s3_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def store(s3):  # noqa: F811 (the fixture imported above)
    attachment_store.cache_clear()
    yield s3
    attachment_store.cache_clear()


@pytest.fixture
def local_store(tmp_path):
    with override_settings(S3_BUCKET="", ATTACHMENT_LOCAL_DIR=str(tmp_path)):
        attachment_store.cache_clear()
        yield tmp_path
    attachment_store.cache_clear()


@pytest.fixture
def team(make_user):
    owner, member, outsider, visitor = (make_user(n) for n in ("owner", "member", "outsider", "visitor"))
    room = room_with(owner, "Team", Room.Kind.PRIVATE, members={member: "member"})
    lobby = room_with(owner, "Lobby", Room.Kind.PUBLIC, members={member: "member"})
    return {"room": room, "lobby": lobby, "owner": owner, "member": member, "outsider": outsider, "visitor": visitor}


@pytest.fixture
def queued(monkeypatch):
    """The tasks services queue (after commit), recorded instead of sent to a broker: run them with
    `run_queued()` as a worker would."""
    calls: list = []
    monkeypatch.setattr(tasks.make_thumbnail, "delay", lambda *args: calls.append((tasks.make_thumbnail, args)))
    monkeypatch.setattr(tasks.delete_objects, "delay", lambda *args: calls.append((tasks.delete_objects, args)))
    return calls


def committed():
    """Run what waits for the commit (events, queued tasks) at the end of the block, as a real
    commit would (these tests run inside a transaction that is rolled back)."""
    return TestCase.captureOnCommitCallbacks(execute=True)


def run_queued(calls: list) -> list:
    with committed():
        results = [task(*args) for task, args in calls]
    calls.clear()
    return results


def png_bytes(width: int = 64, height: int = 40, colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def corrupt_png(width: int = 64, height: int = 40) -> bytes:
    """A PNG whose header is sound (its size can be read) but whose pixel data is garbage."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"not zlib at all" * 20) + chunk(b"IEND", b"")


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def base(room) -> str:
    return f"/api/v1/rooms/{room.pk}/attachments/"


def start(user, room, name: str, data: bytes, content_type: str, *, size: int | None = None):
    return client_for(user).post(
        base(room),
        {"name": name, "size": len(data) if size is None else size, "content_type": content_type},
        format="json",
    )


def upload(started: dict, data: bytes, client=None) -> int:
    """POST the file to the presigned form, as a browser does: the form's fields, then the file."""
    form = started["upload"]
    if client is not None:  # the local store, inside the test's own Django
        fields = dict(form["fields"], file=SimpleUploadedFile("upload", data))
        return client.post(form["url"], fields).status_code
    response = requests.post(form["url"], data=form["fields"], files={"file": ("blob", data)}, timeout=30)
    return response.status_code


def uploaded(user, room, name: str, data: bytes, content_type: str) -> dict:
    """Start, upload and complete: the completed attachment's payload."""
    started = start(user, room, name, data, content_type)
    assert started.status_code == 201, started.json()
    assert upload(started.json(), data) in (200, 204)
    with committed():
        completed = client_for(user).post(f"{base(room)}{started.json()['attachment']['id']}/complete/")
    assert completed.status_code == 200, completed.json()
    return completed.json()


def send_with(user, room, ids: list, content: str = ""):
    with committed():
        return client_for(user).post(
            f"/api/v1/rooms/{room.pk}/messages/",
            {"content": content, "client_msg_id": str(uuid.uuid4()), "attachments": ids},
            format="json",
        )


def test_it_uploads_an_image_straight_to_the_store_and_sends_it_with_a_message(store, team, queued, events):
    client, bucket = store
    room, member, owner = team["room"], team["member"], team["owner"]
    started = start(member, room, "../../holiday.png", png_bytes(), "image/png").json()
    assert started["attachment"]["name"] == "holiday.png"  # a name, never a path
    assert started["upload"]["url"].startswith("http://127.0.0.1")  # the store, not Parley
    assert upload(started, png_bytes()) in (200, 204)
    attachment_id = started["attachment"]["id"]
    with committed():
        completed = client_for(member).post(f"{base(room)}{attachment_id}/complete/").json()
    assert completed | {"id": None} == {
        "id": None,
        "name": "holiday.png",
        "size": len(png_bytes()),
        "content_type": "image/png",
        "kind": "image",
        "width": 64,
        "height": 40,
        "thumbnail": "pending",
    }
    assert [task for task, _ in queued] == [tasks.make_thumbnail]
    # Completing again changes nothing.
    assert client_for(member).post(f"{base(room)}{attachment_id}/complete/").json() == completed

    sent = send_with(member, room, [attachment_id])
    assert sent.status_code == 201, sent.json()
    assert sent.json()["content"] == "" and sent.json()["attachments"] == [completed]
    (frame,) = events.frames("message.new")
    assert frame["message"]["attachments"] == [completed]
    # History and sync carry it (it is stored with the message: no query of its own).
    history = client_for(owner).get(f"/api/v1/rooms/{room.pk}/messages/").json()["results"]
    assert history[0]["attachments"] == [completed]

    # The thumbnail: made by the task, a numbered message.update of the sent message.
    before = Room.objects.get(pk=room.pk).last_sequence
    assert run_queued(queued) == ["ready"]
    (update,) = events.frames("message.update")
    assert update["sequence"] == before + 1
    assert update["message"]["attachments"][0]["thumbnail"] == "ready"
    synced = client_for(owner).get(f"/api/v1/rooms/{room.pk}/changes/", {"after_sequence": before}).json()
    assert [c["message"]["attachments"][0]["thumbnail"] for c in synced["results"]] == ["ready"]
    thumb_key = f"attachments/{room.pk}/{attachment_id}/thumbnail"
    assert thumb_key in keys_in(client, bucket)

    # A member fetches both through short-lived presigned URLs.
    links = client_for(owner).get(f"{base(room)}{attachment_id}/").json()
    assert links["status"] == "ready" and links["expires_in"] == 300
    original = requests.get(links["url"], timeout=30)
    assert original.content == png_bytes() and original.headers["Content-Type"] == "image/png"
    thumbnail = Image.open(io.BytesIO(requests.get(links["thumbnail_url"], timeout=30).content))
    assert thumbnail.format == "WEBP" and thumbnail.size == (64, 40)
    redirect = client_for(owner).get(f"{base(room)}{attachment_id}/download/", {"variant": "thumbnail"})
    assert redirect.status_code == 302 and "Signature=" in redirect["Location"]  # presigned


def test_it_refuses_a_file_whose_bytes_are_not_what_it_claims(store, team, queued):
    client, bucket = store
    room, member = team["room"], team["member"]
    started = start(member, room, "cat.png", PDF, "image/png").json()
    assert upload(started, PDF) in (200, 204)
    attachment_id = started["attachment"]["id"]
    with committed():
        answer = client_for(member).post(f"{base(room)}{attachment_id}/complete/")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "type_mismatch"
    assert Attachment.objects.get(pk=attachment_id).status == "failed"
    assert keys_in(client, bucket) == []  # the refused object is gone
    assert queued == []
    # It can never be sent, and completing it again says it was refused.
    again = client_for(member).post(f"{base(room)}{attachment_id}/complete/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "upload_failed"
    refused = send_with(member, room, [attachment_id])
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "attachment_not_ready"

    # A PDF declared as a PDF, or as nothing in particular, is fine; a program is not.
    assert uploaded(member, room, "doc.pdf", PDF, "application/pdf")["content_type"] == "application/pdf"
    assert uploaded(member, room, "doc", PDF, "application/octet-stream")["content_type"] == "application/pdf"
    elf = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4
    started = start(member, room, "tool", elf, "").json()
    assert upload(started, elf) in (200, 204)
    answer = client_for(member).post(f"{base(room)}{started['attachment']['id']}/complete/")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "unsupported_type"
    declared_html = start(member, room, "page.html", b"<p>hi</p>", "text/html")
    assert declared_html.status_code == 400 and declared_html.json()["error"]["code"] == "unsupported_type"


@override_settings(ATTACHMENT_MAX_BYTES=1000)
def test_it_refuses_files_over_the_limits(store, team, queued):
    client, bucket = store
    room, member = team["room"], team["member"]
    answer = start(member, room, "big.pdf", PDF, "application/pdf", size=1001)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "too_large"
    assert not Attachment.objects.exists()  # refused input changes nothing

    # Announced small, uploaded large: the store's policy refuses the body; whatever got through,
    # completion measures and refuses.
    started = start(member, room, "sneaky.pdf", PDF, "application/pdf", size=len(PDF)).json()
    status = upload(started, PDF + b"%" * 500)
    answer = client_for(member).post(f"{base(room)}{started['attachment']['id']}/complete/")
    if status in (200, 204):
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "too_large"
    else:
        assert status == 400
        assert answer.status_code == 409 and answer.json()["error"]["code"] == "upload_missing"
    assert keys_in(client, bucket) == []

    # An image whose header announces more pixels than allowed is refused before it is decoded.
    with override_settings(ATTACHMENT_MAX_PIXELS=1000):
        started = start(member, room, "wide.png", png_bytes(100, 20), "image/png").json()
        upload(started, png_bytes(100, 20))
        answer = client_for(member).post(f"{base(room)}{started['attachment']['id']}/complete/")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "image_too_large"


def test_a_send_takes_only_my_own_completed_uploads_to_that_room_once(store, team, queued):
    room, lobby, member, owner = team["room"], team["lobby"], team["member"], team["owner"]
    mine = uploaded(member, room, "a.pdf", PDF, "application/pdf")["id"]
    elsewhere = uploaded(member, lobby, "b.pdf", PDF, "application/pdf")["id"]
    theirs = uploaded(owner, room, "c.pdf", PDF, "application/pdf")["id"]
    pending = start(member, room, "d.pdf", PDF, "application/pdf").json()["attachment"]["id"]
    before = Room.objects.get(pk=room.pk).last_sequence

    for ids, status, code in [
        ([elsewhere], 404, "attachment_not_found"),  # uploaded to another room
        ([theirs], 404, "attachment_not_found"),  # someone else's
        ([str(uuid.uuid4())], 404, "attachment_not_found"),
        ([pending], 409, "attachment_not_ready"),
        ([mine, mine], 400, "invalid"),
        (["nope"], 400, "invalid"),
        ([mine] * 11, 400, "invalid"),
    ]:
        answer = send_with(member, room, ids)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), ids
    assert Room.objects.get(pk=room.pk).last_sequence == before  # nothing was numbered
    assert Attachment.objects.get(pk=mine).message_id is None

    sent = send_with(member, room, [mine], content="the file")
    assert sent.status_code == 201 and sent.json()["content"] == "the file"
    again = send_with(member, room, [mine])
    assert again.status_code == 409 and again.json()["error"]["code"] == "attachment_used"
    # A plain send without text is still refused.
    assert send_with(member, room, []).json()["error"]["code"] == "invalid"


def test_only_members_fetch_attachments_and_others_are_told_not_found(store, team, queued):
    room, lobby, member, owner = team["room"], team["lobby"], team["member"], team["owner"]
    outsider, visitor = team["outsider"], team["visitor"]
    sent_id = uploaded(member, room, "a.pdf", PDF, "application/pdf")["id"]
    send_with(member, room, [sent_id])
    public_id = uploaded(member, lobby, "b.pdf", PDF, "application/pdf")["id"]
    send_with(member, lobby, [public_id])
    unsent_id = uploaded(member, room, "c.pdf", PDF, "application/pdf")["id"]

    for user, path, expected in [
        (owner, f"{base(room)}{sent_id}/", 200),
        (member, f"{base(room)}{sent_id}/", 200),
        (outsider, f"{base(room)}{sent_id}/", 404),
        (outsider, f"{base(room)}{sent_id}/download/", 404),
        (outsider, f"{base(lobby)}{public_id}/", 404),  # a public room's files are for its members
        (visitor, f"{base(lobby)}{public_id}/download/", 404),
        (owner, f"{base(lobby)}{public_id}/", 200),
        (member, f"{base(lobby)}{sent_id}/", 404),  # not in that room
        (owner, f"{base(room)}{unsent_id}/", 404),  # not sent yet: the uploader's alone
        (member, f"{base(room)}{unsent_id}/", 200),
        (outsider, f"{base(room)}{unsent_id}/complete/", 404),
    ]:
        call = client_for(user).post if path.endswith("complete/") else client_for(user).get
        answer = call(path)
        assert answer.status_code == expected, (user.username, path)
        if expected == 404:
            assert answer.json()["error"]["code"] == "not_found"
    # Outsiders cannot start uploads either.
    assert start(outsider, room, "x.pdf", PDF, "application/pdf").status_code == 404
    download = client_for(owner).get(f"{base(room)}{sent_id}/download/")
    fetched = requests.get(download["Location"], timeout=30)
    assert fetched.content == PDF
    # The URL has the store answer with the sniffed type, as a download under its own name.
    asked = parse_qs(urlsplit(download["Location"]).query)
    assert asked["response-content-disposition"] == ["attachment; filename*=UTF-8''a.pdf"]
    assert asked["response-content-type"] == ["application/pdf"]


def test_deleting_the_message_removes_its_attachments_from_the_store(store, team, queued, events):
    client, bucket = store
    room, member, owner = team["room"], team["member"], team["owner"]
    image = uploaded(member, room, "a.png", png_bytes(), "image/png")["id"]
    document = uploaded(member, room, "b.pdf", PDF, "application/pdf")["id"]
    kept = uploaded(member, room, "c.pdf", PDF, "application/pdf")["id"]
    assert run_queued(queued) == ["ready"]  # the image's thumbnail, before it was sent
    message = send_with(member, room, [image, document]).json()
    assert [a["thumbnail"] for a in message["attachments"]] == ["ready", "none"]
    send_with(member, room, [kept])
    assert len(keys_in(client, bucket)) == 4  # two originals, a thumbnail, and the other message's

    with committed():
        deleted = client_for(owner).delete(f"/api/v1/rooms/{room.pk}/messages/{message['id']}/")
    assert deleted.status_code == 200 and deleted.json()["attachments"] == []
    assert events.frames("message.delete")[0]["message"]["attachments"] == []
    assert client_for(member).get(f"{base(room)}{image}/").status_code == 404
    run_queued(queued)
    assert keys_in(client, bucket) == [f"attachments/{room.pk}/{kept}/original"]
    assert set(Attachment.objects.filter(pk__in=[image, document]).values_list("status", flat=True)) == {"deleted"}


def test_deleting_the_room_removes_its_attachments_from_the_store(store, team, queued):
    client, bucket = store
    room, lobby, member, owner = team["room"], team["lobby"], team["member"], team["owner"]
    sent = uploaded(member, room, "a.pdf", PDF, "application/pdf")["id"]
    send_with(member, room, [sent])
    uploaded(member, room, "b.pdf", PDF, "application/pdf")  # never sent
    elsewhere = uploaded(member, lobby, "c.pdf", PDF, "application/pdf")["id"]
    with committed():
        assert client_for(owner).delete(f"/api/v1/rooms/{room.pk}/").status_code == 204
    run_queued(queued)
    assert keys_in(client, bucket) == [f"attachments/{lobby.pk}/{elsewhere}/original"]
    assert list(Attachment.objects.values_list("id", flat=True)) == [uuid.UUID(elsewhere)]


def test_the_thumbnail_task_makes_a_real_png_small_and_survives_a_corrupt_one(store, team, queued):
    client, bucket = store
    room, member = team["room"], team["member"]
    big = png_bytes(1600, 900, (10, 120, 200))
    good = uploaded(member, room, "wide.png", big, "image/png")
    bad = uploaded(member, room, "broken.png", corrupt_png(), "image/png")  # its header is sound
    assert (bad["width"], bad["height"]) == (64, 40)
    assert run_queued(queued) == ["ready", "failed"]
    assert Attachment.objects.get(pk=good["id"]).thumbnail == "ready"
    assert Attachment.objects.get(pk=bad["id"]).thumbnail == "failed"
    thumb = Image.open(io.BytesIO(attachment_store().read(f"attachments/{room.pk}/{good['id']}/thumbnail")))
    assert thumb.size == (480, 270)
    assert f"attachments/{room.pk}/{bad['id']}/thumbnail" not in keys_in(client, bucket)
    # The task run twice (a redelivery) does nothing the second time.
    assert attachment_services.thumbnail_make(attachment_id=good["id"]) == "gone"


def test_the_local_store_serves_the_same_protocol_without_a_bucket(local_store, team, queued, client):
    room, member, outsider = team["room"], team["member"], team["outsider"]
    started = start(member, room, "notes.txt", "héllo\n".encode(), "text/plain").json()
    assert started["upload"]["url"].startswith("http://testserver/attachments/local/upload/")
    assert upload(started, b"x" * 100, client=client) == 400  # over the announced size
    assert upload(started, "héllo\n".encode(), client=client) == 204
    attachment_id = started["attachment"]["id"]
    completed = client_for(member).post(f"{base(room)}{attachment_id}/complete/").json()
    assert completed["content_type"] == "text/plain" and completed["kind"] == "file"
    send_with(member, room, [attachment_id])
    url = client_for(member).get(f"{base(room)}{attachment_id}/").json()["url"]
    served = client.get(url)
    assert served.status_code == 200 and b"".join(served.streaming_content) == "héllo\n".encode()
    assert served["Content-Disposition"].startswith("attachment;")
    assert client.get(url[:-3] + "xx/").status_code == 404  # a forged token
    assert client_for(outsider).get(f"{base(room)}{attachment_id}/").status_code == 404


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_socket_send_carries_attachments_and_refuses_one_sent_already(local_store, team, client):
    room, member = team["room"], team["member"]

    def completed_upload() -> dict:
        started = start(member, room, "notes.txt", b"hello\n", "text/plain").json()
        assert upload(started, b"hello\n", client=client) == 204
        return client_for(member).post(f"{base(room)}{started['attachment']['id']}/complete/").json()

    attachment = await database_sync_to_async(completed_upload)()
    socket, _ = await connect(member)
    frame = {"type": "message.send", "room": str(room.pk), "content": "", "attachments": [attachment["id"]]}
    await socket.send_json_to(dict(frame, client_msg_id=str(uuid.uuid4())))
    ack = await receive_type(socket, "message.ack")
    assert ack["message"]["attachments"] == [attachment] and ack["message"]["content"] == ""
    again = dict(frame, client_msg_id=str(uuid.uuid4()))
    await socket.send_json_to(again)
    error = await receive_type(socket, "error")
    assert (error["code"], error["ref"]) == ("attachment_used", again["client_msg_id"])
    await socket.disconnect(timeout=TIMEOUT)


def test_archived_rows_keep_their_attachments():
    """messaging.archive's rows carry the message's attachments (older rows have none)."""
    row = [str(uuid.uuid4()), str(uuid.uuid4()), 5, 6, None, "", str(uuid.uuid4())]
    row += ["2026-01-01T00:00:00+00:00", None, None, None, 0, None, None, None]
    carried = [{"id": str(uuid.uuid4()), "name": "a.png", "thumbnail": "ready"}]
    assert archive._as_message(row + [carried]).attachments == carried
    assert archive._as_message(row).attachments is None  # an archive written before attachments
    assert json.loads(archive._restorable(row + [carried])[15]) == carried
