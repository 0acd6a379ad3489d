"""End-to-end encrypted direct rooms in the web UI (docs/e2ee.md), in headless Chromium with
WebCrypto: two people in a direct room, each page publishes its device key; one turns encryption
on, both see it live, they exchange messages that each reads in plain text (also after a reload,
from history), and PostgreSQL holds only envelopes."""

import base64
import re

import pytest
from playwright.sync_api import expect

from tests.test_browser import PASSWORD, chromium, in_thread, send, two_pages  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser

TEXTS = ("Meet at the old mill at nine", "Bringing the map and two lanterns")


CHECK_BINDING = """async ([me, roomId]) => {
    const { DeviceKeys, Sealer } = await import("/static/js/e2ee.js");
    const keys = new DeviceKeys(me);
    const sealer = (room) => new Sealer({ keys, roomId: room, members: () => [me.id] });
    const envelope = await sealer(roomId).seal("moved or changed");
    const first = envelope.ciphertext[0] === "A" ? "B" : "A";
    const changed = { ...envelope, ciphertext: first + envelope.ciphertext.slice(1) };
    const opened = (sealing, id, sealed) =>
        sealing.open({ id, sender: me, e2ee: { kind: "message", envelope: sealed } }).catch(() => "refused");
    return [
        await opened(sealer(roomId), "as sent", envelope),
        await opened(sealer(crypto.randomUUID()), "moved", envelope),
        await opened(sealer(roomId), "changed", changed),
    ];
}"""


def two_pages_in_a_direct_room(start_server, chromium, make_user):  # noqa: F811 (the fixture)
    """Ann and Ben in a direct room, each with it open in a browser of their own."""
    from rooms.services import direct_room_get_or_create

    ann, ben = make_user(password=PASSWORD), make_user(password=PASSWORD)
    room, _ = direct_room_get_or_create(user=ann, other=ben)
    return (ann, ben, room, *two_pages(start_server, chromium, ann, ben, room))


def stored_contents(room_id) -> list[str]:
    from messaging.models import Message

    return list(Message.objects.filter(room_id=room_id).order_by("sequence").values_list("content", flat=True))


def test_two_people_read_their_encrypted_messages_and_the_server_stores_only_ciphertext(
    start_server,
    chromium,  # noqa: F811 (the fixture)
    make_user,
):
    from e2ee.envelope import ENABLED_NOTICE, MESSAGE_PREFIX

    ann, ben, room, ann_page, ben_page, errors = two_pages_in_a_direct_room(start_server, chromium, make_user)
    for page in (ann_page, ben_page):
        bar = page.locator("#e2ee-bar")
        expect(bar).to_have_attribute("data-encrypted", "false")
        expect(bar).to_have_attribute("data-device", "ready")  # this device's key is published

    ann_page.get_by_role("button", name="Turn on end-to-end encryption").click()
    ann_page.locator("#confirm-ok").click()
    for page in (ann_page, ben_page):  # Ben's page learns it live
        expect(page.locator("#e2ee-bar")).to_have_attribute("data-encrypted", "true")
        expect(page.locator("#e2ee-state")).to_contain_text("Search and notification previews are off")
        expect(page.locator("#messages .msg-e2ee-notice")).to_contain_text("turned on end-to-end encryption")
        expect(page.get_by_role("button", name="Turn on end-to-end encryption")).to_be_hidden()
        expect(page.locator("#attach-button")).to_be_hidden()

    send(ann_page, TEXTS[0])
    expect(ben_page.locator('#messages .msg-e2ee[data-e2ee="open"]')).to_have_text(TEXTS[0])
    send(ben_page, TEXTS[1])
    for page in (ann_page, ben_page):
        expect(page.locator('#messages .msg-e2ee[data-e2ee="open"]')).to_have_text(list(TEXTS))
    # From history after a reload: the key stayed in this browser's IndexedDB.
    ben_page.reload()
    expect(ben_page.locator('#messages .msg-e2ee[data-e2ee="open"]')).to_have_text(list(TEXTS))

    # The room and the sending device are authenticated with the text: an envelope moved to another
    # room, or with a changed ciphertext, does not open (the page's own module, this device's key).
    outcomes = ann_page.evaluate(CHECK_BINDING, [{"id": ann.pk, "username": ann.username}, str(room.pk)])
    assert outcomes == ["moved or changed", "refused", "refused"]

    contents = in_thread(stored_contents, room.pk)
    assert contents[0] == ENABLED_NOTICE and len(contents) == 3
    for content in contents[1:]:
        assert content.startswith(MESSAGE_PREFIX)
        assert not any(text in content for text in TEXTS)
    assert errors == []


SAFETY_NUMBER = re.compile(r"\d{5}(?: \d{5}){11}")


def safety_number(page) -> str:
    """Open the Verify dialog and read the safety number it shows (the dialog stays open)."""
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#confirm-dialog")).to_be_visible()  # shown once the devices are read
    found = SAFETY_NUMBER.search(page.locator("#confirm-text").text_content() or "")
    assert found, page.locator("#confirm-text").text_content()
    return found.group(0)


def a_new_device(user) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from e2ee.services import device_register

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    device_register(user=user, public_key=base64.b64encode(spki).decode(), label="Unknown")


def test_the_two_people_compare_a_safety_number_and_a_device_added_since_shows(
    start_server,
    chromium,  # noqa: F811 (the fixture)
    make_user,
):
    """docs/e2ee.md "Verifying": both pages show the same safety number; the one who marks it as
    matching sees "Verified" (kept across reloads); a device that appears later on either
    person's list (a new browser of theirs, or one the server slipped in) changes the number, and
    the page says so."""
    ann, ben, room, ann_page, ben_page, errors = two_pages_in_a_direct_room(start_server, chromium, make_user)
    for page in (ann_page, ben_page):
        expect(page.locator("#e2ee-bar")).to_have_attribute("data-device", "ready")
        expect(page.get_by_role("button", name="Verify")).to_be_hidden()  # not encrypted yet
    ann_page.get_by_role("button", name="Turn on end-to-end encryption").click()
    ann_page.locator("#confirm-ok").click()
    expect(ben_page.locator("#e2ee-bar")).to_have_attribute("data-encrypted", "true")

    number = safety_number(ann_page)
    assert safety_number(ben_page) == number
    ben_page.locator('#confirm-dialog button[value="cancel"]').click()
    ann_page.locator("#confirm-ok").click()  # "They match"
    expect(ann_page.locator("#e2ee-bar")).to_have_attribute("data-verified", "yes")
    expect(ann_page.locator("#e2ee-verified")).to_have_text("Verified.")
    expect(ben_page.locator("#e2ee-bar")).to_have_attribute("data-verified", "no")  # Ben did not confirm
    ann_page.reload()
    expect(ann_page.locator("#e2ee-bar")).to_have_attribute("data-verified", "yes")

    in_thread(a_new_device, ben)
    ann_page.reload()
    expect(ann_page.locator("#e2ee-bar")).to_have_attribute("data-verified", "changed")
    expect(ann_page.locator("#e2ee-verified")).to_contain_text("verify again")
    changed = safety_number(ann_page)
    # Ann's half (the lower user id: the first 30 digits) is the same; Ben's half changed.
    assert changed[:35] == number[:35] and changed[36:] != number[36:]
    ben_page.reload()
    assert safety_number(ben_page) == changed
    assert errors == []
