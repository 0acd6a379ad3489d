"""Search and formatting in the web UI (headless Chromium against a real server; see
tests/test_browser.py): the top bar's search, a result opening its room at the message (history
loaded back to it), and messages shown with the server's formatting, live too."""

import uuid

import pytest
from playwright.sync_api import expect

from tests import test_browser
from tests.test_browser import PASSWORD, open_page, send, sign_in

pytestmark = pytest.mark.browser

chromium = test_browser.chromium  # the fixture that launches Debian's Chromium


def test_search_jumps_to_the_message_and_formatting_shows(start_server, chromium, make_user):
    from messaging.services import message_send
    from rooms.services import room_create

    reader = make_user(password=PASSWORD)
    ops = room_create(creator=reader, name="Ops", kind="private")
    other = room_create(creator=reader, name="Other", kind="private")

    def say(room, text):
        message_send(user=reader, room_id=room.pk, content=text, client_msg_id=uuid.uuid4())

    say(ops, "Message number 1")
    say(ops, "Message number 2")
    say(ops, "the **zebra** launch checklist, see [runbook](https://example.com/rb) <b>not bold</b>")
    for number in range(4, 76):
        say(ops, f"Message number {number}")
    say(other, "a zebra crossing")

    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    page = open_page(browser, base_url, errors)
    sign_in(page, reader.username)
    page.goto(f"/rooms/{other.pk}/")
    expect(page.locator("#conn-badge")).to_have_text("Connected", timeout=15_000)  # a loaded machine

    # Search from the top bar: both rooms' messages, with the match marked.
    page.get_by_label("Search messages").fill("zebras")
    page.get_by_label("Search messages").press("Enter")
    hits = page.locator("#search-results .search-hit")
    expect(hits).to_have_count(2)
    expect(page.locator("#search-status")).to_contain_text("2 results")
    ops_hit = hits.filter(has_text="Ops")
    expect(ops_hit.locator("mark")).to_have_text("zebra")
    expect(ops_hit.locator(".search-snippet")).to_contain_text("not bold")
    assert ops_hit.locator(".search-snippet b").count() == 0  # text pieces, never markup

    # "Only this room" narrows it to the room open.
    page.get_by_label("Only Other").check()
    expect(hits).to_have_count(1)
    expect(hits.first).to_contain_text("a zebra crossing")
    page.get_by_label("Only Other").uncheck()
    expect(hits).to_have_count(2)

    # The Ops result opens Ops at message 3, back in its history (the second page).
    ops_hit.locator("a").click()
    expect(page.locator("#room-name")).to_have_text("Ops")
    target = page.locator('#messages .msg[data-sequence="3"]')
    expect(target).to_have_attribute("data-found", "true")
    expect(target).to_be_in_viewport()
    assert page.locator("#search-panel").is_hidden()

    # Its body is the server's formatting: bold, a link that opens safely, HTML shown as text.
    body = target.locator(".msg-body")
    expect(body.locator("strong")).to_have_text("zebra")
    link = body.locator("a")
    expect(link).to_have_attribute("href", "https://example.com/rb")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(body).to_contain_text("<b>not bold</b>")
    assert body.locator("b").count() == 0

    # A message sent now shows its formatting once the server's copy lands.
    send(page, "*live* `code` [x](javascript:alert(1))")
    row = page.locator("#messages .msg").last
    expect(row.locator(".msg-body em")).to_have_text("live")
    expect(row.locator(".msg-body code")).to_have_text("code")
    assert row.locator(".msg-body a").count() == 0
    assert errors == []
