"""Mentions and notifications in the web UI (docs/notifications.md), end to end in headless Chromium:
@ completion in the composer by keyboard, the mention highlighted as the reader's own, the inbox
badge live, the inbox panel, mark all read, and the room's level sent to the server."""

import pytest
from playwright.sync_api import expect

from tests.test_browser import chromium, two_pages_in_a_room  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser


def test_a_mention_is_completed_highlighted_and_lands_in_the_inbox(start_server, chromium, make_user):  # noqa: F811
    ann, ben, room, ann_page, ben_page, errors = two_pages_in_a_room(start_server, chromium, make_user)
    badge = ann_page.locator("#inbox-badge")
    expect(badge).to_be_hidden()

    # Ben types "@" and the start of Ann's name: the suggestions are a listbox the textarea controls.
    box = ben_page.locator("#composer-input")
    box.click()
    box.press_sequentially(f"@{ann.username[:-2]}")
    option = ben_page.get_by_role("option", name=f"@{ann.username}")
    expect(option).to_be_visible()
    expect(option).to_have_attribute("aria-selected", "true")
    expect(box).to_have_attribute("aria-activedescendant", option.get_attribute("id"))
    box.press("Enter")  # takes the suggestion; does not send
    expect(box).to_have_value(f"@{ann.username} ")
    expect(ben_page.get_by_role("listbox")).to_be_hidden()
    box.press_sequentially("can you look?")
    box.press("Enter")

    # Ann sees it live, her name marked as hers, and the badge counts it.
    mention = ann_page.locator("#messages .msg .mention-me")
    expect(mention).to_have_text(f"@{ann.username}")
    expect(badge).to_have_text("1")
    expect(ann_page.locator("#inbox-button")).to_have_attribute("aria-label", "Notifications, 1 unread")
    # Ben's own copy marks the name too, but not as his.
    expect(ben_page.locator("#messages .msg .mention")).to_have_class("mention")

    ann_page.locator("#inbox-button").click()
    item = ann_page.locator("#inbox-list .inbox-item.is-unread")
    expect(item).to_contain_text(f"{ben.username} mentioned you in Planning")
    expect(item).to_contain_text("can you look?")
    ann_page.get_by_role("button", name="Mark all read").click()
    expect(badge).to_be_hidden()
    expect(ann_page.locator("#inbox-list .inbox-item.is-unread")).to_have_count(0)
    expect(ben_page.locator("#inbox-badge")).to_be_hidden()  # nothing for the author

    # The room's level: chosen in the header, stored by the server (tests/test_notifications.py
    # reads it back over REST).
    ann_page.keyboard.press("Escape")
    expect(ann_page.locator("#inbox-panel")).to_be_hidden()
    with ann_page.expect_response(lambda r: r.request.method == "PUT" and r.ok) as answer:
        ann_page.locator("#room-level").select_option("mute")
    assert answer.value.json() == {"room": str(room.pk), "level": "mute"}
    assert errors == []
