"""End-to-end encrypted direct rooms (issue 18; docs/e2ee.md), on the server's side: device keys and
who may list them, turning a room's encryption on (a numbered notice, audited, announced, synced),
envelopes checked and stored as sent (never text), plain text refused, and no search and no
previews for such rooms. The browser's half (WebCrypto) is tests/test_e2ee_browser.py."""

import base64
import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections, transaction

from audit.models import AuditEntry
from core.events import room_group
from e2ee import envelope
from e2ee import services as e2ee_services
from e2ee.models import Device
from messaging import services as messaging_services
from messaging.models import Message, MessageRevision
from rooms.models import Room
from tests.conftest import client_for, lock_waiters, room_with, send_message, wait_until
from workspaces import services as workspace_services
from workspaces.models import WorkspaceMembership

pytestmark = pytest.mark.django_db

V1 = "/api/v1"
SPKI_P256_HEADER = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def public_key() -> str:
    """A public key in the shape WebCrypto exports (the server checks the shape only)."""
    return b64(SPKI_P256_HEADER + b"\x04" + os.urandom(64))


def sealed(sender_device: object, *devices: object, ciphertext: bytes | None = None) -> dict:
    """An envelope as a browser makes it: random bytes stand in for the ciphertext and wrapped keys."""
    return {
        "v": 1,
        "sender_device": str(sender_device),
        "iv": b64(os.urandom(12)),
        "ciphertext": b64(ciphertext if ciphertext is not None else os.urandom(48)),
        "keys": {str(device): b64(os.urandom(40)) for device in (sender_device, *devices)},
    }


@pytest.fixture
def pair(make_user):
    """Ana and Bob with a direct room and one device each; Cid, of the same workspace, outside it."""
    ana, bob, cid = make_user("ana"), make_user("bob"), make_user("cid")
    room = client_for(ana).post(f"{V1}/rooms/direct/", {"user": "bob"}).json()
    devices = {
        person.username: client_for(person).post(f"{V1}/e2ee/devices/", {"public_key": public_key()}).json()["id"]
        for person in (ana, bob)
    }
    return {"ana": ana, "bob": bob, "cid": cid, "room": room["id"], "devices": devices}


def enable(pair, who="ana"):
    return client_for(pair[who]).post(f"{V1}/rooms/{pair['room']}/encryption/")


def post(user, room_id, content, client_msg_id=None, **extra):
    body = {"content": content, "client_msg_id": str(client_msg_id or uuid.uuid4()), **extra}
    return client_for(user).post(f"{V1}/rooms/{room_id}/messages/", body, format="json")


# -- the envelope ---------------------------------------------------------------------------------

DEVICE = str(uuid.uuid4())


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda e: e.pop("iv"), "envelope_invalid"),
        (lambda e: e.update(extra=1), "envelope_invalid"),
        (lambda e: e.update(v=2), "envelope_version"),
        (lambda e: e.update(v=True), "envelope_version"),
        (lambda e: e.update(sender_device="laptop"), "envelope_invalid"),
        (lambda e: e.update(iv=b64(os.urandom(16))), "envelope_invalid"),
        (lambda e: e.update(iv="not base64!"), "envelope_invalid"),
        (lambda e: e.update(ciphertext=b64(os.urandom(16))), "envelope_invalid"),  # a tag and nothing else
        (lambda e: e.update(ciphertext=b64(os.urandom(envelope.CIPHERTEXT_MAX_BYTES + 1))), "envelope_too_large"),
        (lambda e: e.update(keys={}), "envelope_invalid"),
        (lambda e: e.update(keys=[DEVICE]), "envelope_invalid"),
        (lambda e: e.update(keys={DEVICE: b64(os.urandom(32))}), "envelope_invalid"),
        (
            lambda e: e.update(keys={DEVICE: b64(os.urandom(40)), DEVICE.upper(): b64(os.urandom(40))}),
            "envelope_invalid",
        ),
        (
            lambda e: e.update(keys={str(uuid.uuid4()): b64(os.urandom(40)) for _ in range(envelope.MAX_KEYS + 1)}),
            "envelope_too_large",
        ),
    ],
)
def test_it_refuses_a_malformed_envelope_with_a_stable_code(change, code):
    bad = sealed(DEVICE)
    change(bad)
    with pytest.raises(envelope.EnvelopeError) as refused:
        envelope.clean(bad)
    assert refused.value.code == code


def test_it_keeps_a_valid_envelope_as_sent_in_canonical_form():
    other = str(uuid.uuid4()).upper()
    good = sealed(DEVICE, other)
    cleaned = envelope.clean(good)
    assert cleaned["keys"] == {
        key.lower(): value for key, value in sorted(good["keys"].items(), key=lambda kv: kv[0].lower())
    }
    assert (cleaned["iv"], cleaned["ciphertext"]) == (good["iv"], good["ciphertext"])
    stored = envelope.encode(cleaned)
    assert envelope.is_marked(stored) and envelope.payload_of(stored) == {"kind": "message", "envelope": cleaned}


# -- device keys ----------------------------------------------------------------------------------


def test_it_registers_lists_and_revokes_devices(make_user):
    ana = make_user("ana")
    api = client_for(ana)
    key = public_key()
    first = api.post(f"{V1}/e2ee/devices/", {"public_key": key, "label": "Firefox"})
    assert first.status_code == 201 and first.json()["label"] == "Firefox" and first.json()["revoked_at"] is None
    again = api.post(f"{V1}/e2ee/devices/", {"public_key": key})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]  # a retry adds nothing
    for bad in ("", "not base64", b64(os.urandom(91)), b64(SPKI_P256_HEADER + b"\x02" + os.urandom(64))):
        refused = api.post(f"{V1}/e2ee/devices/", {"public_key": bad})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid"
    assert Device.objects.filter(user=ana).count() == 1

    revoked = api.delete(f"{V1}/e2ee/devices/{first.json()['id']}/")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert [d["revoked_at"] is not None for d in api.get(f"{V1}/e2ee/devices/").json()["results"]] == [True]
    reused = api.post(f"{V1}/e2ee/devices/", {"public_key": key})
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "device_revoked"
    assert list(AuditEntry.objects.filter(action__startswith="e2ee.").values_list("action", flat=True)) == [
        "e2ee.device_register",
        "e2ee.device_revoke",
    ]


def test_staff_see_devices_and_revoke_one_through_the_service_in_admin(pair, make_user):
    from django.test import Client

    root = make_user("root", is_staff=True, is_superuser=True)
    admin = Client()
    admin.force_login(root)
    listed = admin.get("/admin/e2ee/device/")
    assert listed.status_code == 200 and pair["devices"]["ana"] in listed.content.decode()
    assert admin.get(f"/admin/e2ee/device/{pair['devices']['ana']}/change/").status_code == 200
    done = admin.post("/admin/e2ee/device/", {"action": "revoke", "_selected_action": [pair["devices"]["ana"]]})
    assert done.status_code == 302
    assert Device.objects.get(pk=pair["devices"]["ana"]).revoked_at is not None
    assert Device.objects.get(pk=pair["devices"]["bob"]).revoked_at is None
    entry = AuditEntry.objects.get(action="e2ee.device_revoke")
    assert (entry.actor_id, entry.before["user"], entry.before["as_staff"]) == (root.pk, pair["ana"].pk, True)


def test_people_see_and_revoke_their_devices_on_a_page(pair):
    from django.test import Client

    page = Client()
    page.force_login(pair["ana"])
    assert 'href="/account/devices/"' in page.get("/account/").content.decode()
    listed = page.get("/account/devices/").content.decode()
    assert pair["devices"]["ana"] in listed and pair["devices"]["bob"] not in listed
    assert page.post("/account/devices/", {"device": pair["devices"]["bob"]}).status_code == 302  # not hers
    assert page.post("/account/devices/", {"device": pair["devices"]["ana"]}).status_code == 302
    assert Device.objects.get(pk=pair["devices"]["ana"]).revoked_at is not None
    assert Device.objects.get(pk=pair["devices"]["bob"]).revoked_at is None
    after = page.get("/account/devices/").content.decode()
    assert "is-revoked" in after and "Revoked" in after and "No such device." in after


def test_an_erased_account_keeps_no_device_keys(pair):
    from accounts.erasure import account_erase

    account_erase(actor=pair["ana"], user=pair["ana"], password="correct-horse-battery", via="test")
    assert list(Device.objects.values_list("user_id", flat=True)) == [pair["bob"].pk]
    assert AuditEntry.objects.get(action="gdpr.erase").after["devices"] == 1


def test_device_lists_are_for_people_who_share_a_workspace(pair, make_user):
    ana, bob, cid = pair["ana"], pair["bob"], pair["cid"]
    listed = client_for(bob).get(f"{V1}/e2ee/users/{ana.pk}/devices/")
    assert listed.status_code == 200 and [d["id"] for d in listed.json()["results"]] == [pair["devices"]["ana"]]
    assert client_for(cid).get(f"{V1}/e2ee/users/{ana.pk}/devices/").status_code == 200  # same workspace
    # Someone of another workspace only: as unknown as a user who does not exist.
    far = make_user("far")
    workspace_services.workspace_create(creator=far, name="Globex")
    WorkspaceMembership.objects.filter(user=far).exclude(workspace__slug="globex").delete()
    for path in (
        f"{V1}/e2ee/users/{ana.pk}/devices/",
        f"{V1}/e2ee/users/999999/devices/",
        f"{V1}/e2ee/users/x/devices/",
    ):
        hidden = client_for(far).get(path)
        assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "user_not_found", path
    # Nobody revokes another person's device.
    theirs = client_for(bob).delete(f"{V1}/e2ee/devices/{pair['devices']['ana']}/")
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "device_not_found"
    assert Device.objects.get(pk=pair["devices"]["ana"]).revoked_at is None


# -- turning it on --------------------------------------------------------------------------------


def test_either_member_turns_it_on_once_with_a_numbered_notice(pair, events, django_capture_on_commit_callbacks):
    before = send_message(Room.objects.get(pk=pair["room"]), pair["ana"], "before the switch")
    with django_capture_on_commit_callbacks(execute=True):
        answer = enable(pair, "bob")
    assert answer.status_code == 200 and answer.json()["encrypted"] is True
    room = Room.objects.get(pk=pair["room"])
    assert room.encrypted_since == before.sequence + 1 == room.last_sequence
    # Live: the notice as the room's next change, and the room's new settings.
    [change] = events.frames("message.new", group=room_group(room.pk))
    assert change["sequence"] == room.encrypted_since
    assert change["message"]["e2ee"] == {"kind": "enabled"} and change["message"]["content"] == ""
    assert [f["room"]["encrypted"] for f in events.frames("room.update", group=room_group(room.pk))] == [True]
    # On sync: the same notice, after the plain message.
    synced = client_for(pair["ana"]).get(f"{V1}/rooms/{room.pk}/changes/?after_sequence=0").json()["results"]
    assert [(c["sequence"], c["message"].get("e2ee")) for c in synced] == [
        (before.sequence, None),
        (room.encrypted_since, {"kind": "enabled"}),
    ]
    entry = AuditEntry.objects.get(action="room.encryption_enable")
    assert (entry.actor_id, entry.before, entry.after) == (
        pair["bob"].pk,
        {"encrypted": False},
        {"encrypted": True, "sequence": room.encrypted_since},
    )
    # Once is enough: again changes nothing and announces nothing.
    events.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert enable(pair, "ana").status_code == 200
    assert len(events) == 0 and Room.objects.get(pk=room.pk).last_sequence == room.last_sequence
    # The notice stays.
    gone = client_for(pair["bob"]).delete(f"{V1}/rooms/{room.pk}/messages/{change['message']['id']}/")
    assert gone.status_code == 409 and gone.json()["error"]["code"] == "encryption_notice"


def test_only_direct_rooms_by_their_members(pair):
    cid = pair["cid"]
    outsider = client_for(cid).post(f"{V1}/rooms/{pair['room']}/encryption/")
    assert outsider.status_code == 404 and outsider.json()["error"]["code"] == "not_found"
    group = room_with(cid, kind="private")
    refused = client_for(cid).post(f"{V1}/rooms/{group.pk}/encryption/")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "not_direct"
    assert not Room.objects.filter(encrypted_since__isnull=False).exists()


# -- messages -------------------------------------------------------------------------------------


def test_an_encrypted_room_takes_envelopes_only_and_stores_them_as_sent(pair):
    ana, bob, room_id = pair["ana"], pair["bob"], pair["room"]
    mine, theirs = pair["devices"]["ana"], pair["devices"]["bob"]
    early = sealed(mine, theirs)
    not_yet = post(ana, room_id, early)
    assert not_yet.status_code == 409 and not_yet.json()["error"]["code"] == "not_encrypted"
    enable(pair)
    plain = post(ana, room_id, "the secret plan")
    assert plain.status_code == 409 and plain.json()["error"]["code"] == "encrypted_room"
    malformed = post(ana, room_id, {**early, "iv": "short"})
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "envelope_invalid"
    assert not Message.objects.filter(room_id=room_id).exclude(content=envelope.ENABLED_NOTICE).exists()

    key = uuid.uuid4()
    sent = post(ana, room_id, early, client_msg_id=key)
    assert sent.status_code == 201
    message = sent.json()
    assert (message["content"], message["html"], message["mentions"]) == ("", "", [])
    assert message["e2ee"] == {"kind": "message", "envelope": envelope.clean(early)}
    # Stored as sent: the envelope, and nothing the server made of it.
    row = Message.objects.get(id=message["id"])
    assert row.content == envelope.encode(envelope.clean(early)) and row.mentions is None
    # Idempotent as any send: the same key gives the same message back.
    replay = post(ana, room_id, early, client_msg_id=key)
    assert replay.status_code == 200 and replay.json()["id"] == message["id"]
    # Bob reads it in history with the envelope; a reply in its thread is an envelope too.
    history = client_for(bob).get(f"{V1}/rooms/{room_id}/messages/").json()["results"]
    assert [m["e2ee"]["kind"] for m in history] == ["message", "enabled"]  # newest first
    reply = post(bob, room_id, sealed(theirs, mine), reply_to=message["id"])
    assert reply.status_code == 201 and reply.json()["e2ee"]["kind"] == "message"
    plain_reply = post(bob, room_id, "plain", reply_to=message["id"])
    assert plain_reply.status_code == 409 and plain_reply.json()["error"]["code"] == "encrypted_room"
    # No edits (docs/e2ee.md), and files would not be encrypted.
    edit = client_for(ana).patch(f"{V1}/rooms/{room_id}/messages/{message['id']}/", {"content": "x"}, format="json")
    assert edit.status_code == 409 and edit.json()["error"]["code"] == "encrypted_room"
    files = post(ana, room_id, "", attachments=[str(uuid.uuid4())])
    assert files.status_code == 409 and files.json()["error"]["code"] == "encrypted_room"
    assert not MessageRevision.objects.filter(room_id=room_id).exists()


def test_plain_text_never_looks_like_an_envelope(pair):
    for text in (envelope.ENABLED_NOTICE, envelope.MESSAGE_PREFIX + "{}"):
        refused = post(pair["ana"], pair["room"], text)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "reserved_text"
    # Only that prefix is reserved: other texts with control characters are stored as sent.
    sent = post(pair["ana"], pair["room"], "\x01e2e")
    assert sent.status_code == 201 and sent.json()["content"] == "\x01e2e" and "e2ee" not in sent.json()


def test_search_leaves_encrypted_rooms_out(pair):
    room = Room.objects.get(pk=pair["room"])
    send_message(room, pair["ana"], "zebra crossing")

    def hits(**params):
        return client_for(pair["bob"]).get(f"{V1}/search/", {"q": "zebra", **params})

    assert [h["room"]["id"] for h in hits().json()["results"]] == [pair["room"]]
    enable(pair)
    assert hits().json()["results"] == []
    named = hits(room=pair["room"])
    assert named.status_code == 400 and named.json()["error"]["code"] == "room_encrypted"


def test_notifications_say_encrypted_message(pair, django_capture_on_commit_callbacks):
    enable(pair)
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            post(pair["ana"], pair["room"], sealed(pair["devices"]["ana"], pair["devices"]["bob"])).status_code == 201
        )
    [item] = client_for(pair["bob"]).get(f"{V1}/notifications/").json()["results"]
    assert item["kind"] == "direct" and item["message"]["excerpt"] == "Encrypted message"


@pytest.mark.django_db(transaction=True)
def test_text_waiting_for_the_room_while_it_is_switched_on_is_refused(pair):
    """A text send whose statement began before the switch committed (it saw a plain room) and
    waited for the room's lock meanwhile is refused once it has the lock: nothing in plain text
    lands after the notice."""
    ana, bob = pair["ana"], pair["bob"]

    def send_text():
        try:
            return messaging_services.message_send_many(
                requests=[
                    {"user": bob, "room_id": pair["room"], "content": "in the clear", "client_msg_id": uuid.uuid4()}
                ]
            )[0]
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        with transaction.atomic():  # the switch, holding the room until it commits
            e2ee_services.room_encryption_enable(user=ana, room_id=pair["room"])
            sent = pool.submit(send_text)
            wait_until(lambda: lock_waiters() == 1, what="the text send waiting for the room")
        result = sent.result()

    assert getattr(result, "code", None) == "encrypted_room"
    assert not Message.objects.filter(room_id=pair["room"], content="in the clear").exists()
    room = Room.objects.get(pk=pair["room"])
    assert Message.objects.filter(room_id=room.pk).count() == room.last_sequence  # gapless: the notice only
