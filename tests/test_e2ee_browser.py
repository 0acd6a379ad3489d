"""End-to-end encrypted direct rooms in the web UI (docs/e2ee.md), in headless Chromium with
WebCrypto: two people in a direct room, each page publishes its device key; one turns encryption
on, both see it live, they exchange messages that each reads in plain text (also after a reload,
from history), and PostgreSQL holds only envelopes."""

import pytest
from playwright.sync_api import expect

from tests.test_browser import PASSWORD, chromium, in_thread, open_page, open_room, send  # noqa: F401 (fixture)

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


def stored_contents(room_id) -> list[str]:
    from messaging.models import Message

    return list(Message.objects.filter(room_id=room_id).order_by("sequence").values_list("content", flat=True))


def test_two_people_read_their_encrypted_messages_and_the_server_stores_only_ciphertext(
    start_server,
    chromium,  # noqa: F811 (the fixture)
    make_user,
):
    from e2ee.envelope import ENABLED_NOTICE, MESSAGE_PREFIX
    from rooms.services import direct_room_get_or_create

    ann, ben = make_user(password=PASSWORD), make_user(password=PASSWORD)
    room, _ = direct_room_get_or_create(user=ann, other=ben)
    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    ann_page, ben_page = open_page(browser, base_url, errors), open_page(browser, base_url, errors)
    open_room(ann_page, ann, room)
    open_room(ben_page, ben, room)
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
