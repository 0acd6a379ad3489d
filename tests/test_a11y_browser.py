"""Accessibility in a real browser: axe-core (vendored, static/vendor/axe-core/) finds no serious
or critical violation on any page, the message list is one tab stop whose messages' hidden action
buttons are tab stops only once the message has focus, ArrowUp in the empty composer edits one's
last message, and a display name and an avatar show in the room (messages, members, top bar).

One browser, every page (docs/accessibility.md). Nothing here sleeps: every wait is for
something the page shows.
"""

import io
import re
import time

from django.core import signing
from PIL import Image
from playwright.sync_api import expect

from accounts.services import EMAIL_CHANGE_SALT
from tests import test_browser
from tests.test_browser import PASSWORD, open_page, row, send, sign_in

chromium = test_browser.chromium  # the fixture that launches Debian's Chromium

AXE = "/static/vendor/axe-core/axe.min.js"
# axe's findings of impact serious or critical, as short lines (rule, what it says, where).
RUN_AXE = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.slice(0, 4).map((n) => n.target.join(" ")).join(", ")}`);
}"""


def check(page, findings: dict[str, list[str]], name: str) -> None:
    """Run axe on the page as it is now; its serious and critical findings go under `name`."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(url=AXE)  # same origin: allowed by the page's Content-Security-Policy
    findings[name] = page.evaluate(RUN_AXE)


def test_every_page_passes_axe_and_the_chat_works_from_the_keyboard(
    start_server, chromium, make_user, tmp_path, settings
):
    from accounts.services import avatar_set, profile_update
    from boards.services import board_create
    from messaging.archive_storage import archive_storage
    from rooms.services import membership_add, room_create
    from tests.conftest import send_message
    from workspaces.models import WorkspaceMembership
    from workspaces.services import invitation_create, workspace_create

    ann, ben = make_user(password=PASSWORD), make_user(password=PASSWORD)
    # Ann has a display name and a picture (made as the account page and REST do, tests/test_profiles.py).
    settings.S3_BUCKET, settings.ARCHIVE_LOCAL_DIR = "", str(tmp_path)  # the server below shares this store
    archive_storage.cache_clear()
    picture = io.BytesIO()
    Image.new("RGB", (240, 160), "teal").save(picture, format="PNG")
    profile_update(user=ann, display_name="Ann Lovelace")
    avatar_set(user=ann, data=picture.getvalue())
    archive_storage.cache_clear()
    room = room_create(creator=ann, name="Accessible", kind="private")
    membership_add(actor=room.memberships.get(user=ann), user=ben)
    board = board_create(user=ann, room_id=room.pk, title="Plan")
    from_ben = send_message(room, ben, "Morning, Ann")
    acme = workspace_create(creator=ann, name="Acme").workspace
    WorkspaceMembership.objects.create(workspace=acme, user=ben, role="admin")
    invitation_create(actor=acme.memberships.get(user=ann), base_url="http://testserver/")  # a pending link
    base_url = start_server(S3_BUCKET="", ARCHIVE_LOCAL_DIR=str(tmp_path))  # avatars are in the archive's store
    browser = chromium()
    errors: list[str] = []
    findings: dict[str, list[str]] = {}
    page = open_page(browser, base_url, errors)

    # Signed out: sign-in, sign-up (the password rules shown before submitting; its errors after),
    # password reset.
    page.goto("/login/")
    check(page, findings, "sign-in")
    page.goto("/signup/")
    password = page.get_by_label("Password")
    expect(page.locator("#id_password_helptext")).to_contain_text("at least 8 characters")
    expect(password).to_have_attribute("aria-describedby", "id_password_helptext")
    expect(password).to_have_attribute("autocomplete", "new-password")
    check(page, findings, "sign-up")
    page.get_by_label("Username").fill(f"new{ann.username}")
    page.get_by_label("Email").fill("new@example.com")
    password.fill("123")
    page.get_by_role("button", name="Create account").click()
    summary = page.locator("[data-error-summary]")
    expect(summary).to_be_focused()  # read out at once by a screen reader (role=alert, focused)
    expect(summary).to_contain_text("Password:")
    expect(password).to_have_attribute("aria-describedby", "id_password_helptext id_password_error")
    expect(page.locator("#id_password_error")).to_contain_text("too short")
    check(page, findings, "sign-up with errors")
    page.goto("/password-reset/")
    check(page, findings, "password reset")
    # The page a new email address's mailed link opens (it asks before applying the change).
    token = signing.dumps({"user": ann.pk, "email": "ann@new.example", "at": time.time()}, salt=EMAIL_CHANGE_SALT)
    page.goto(f"/account/email/{token}/")
    expect(page.get_by_role("button", name="Use this address")).to_be_visible()
    check(page, findings, "email change confirmation")

    # Signed in: home, the room, a board, the account page.
    sign_in(page, ann.username)
    topbar_avatar = page.locator(".topbar img.avatar-img")
    expect(topbar_avatar).to_be_visible()
    assert topbar_avatar.evaluate("img => img.complete && img.naturalWidth") == 128  # served, 128×128
    check(page, findings, "home")
    page.goto(f"/rooms/{room.pk}/")
    expect(page.locator("#conn-badge")).to_have_text("Connected")
    send(page, "Hello, Ben")
    expect(page.locator("#pending > li")).to_have_count(0)
    # Her name and picture on her message (the socket's ack) and in the member list.
    expect(row(page, "Hello, Ben").locator(".msg-author")).to_have_text("Ann Lovelace")
    expect(row(page, "Hello, Ben").locator("img.avatar-img")).to_be_visible()
    expect(page.locator(f'.member[data-user-id="{ann.pk}"] .member-name')).to_contain_text("Ann Lovelace")
    check(page, findings, "room")

    # The message list is one tab stop (the newest message); arrows move between messages, and a
    # message's hidden actions become tab stops only once it has focus.
    actions = page.locator("#messages .msg-actions button")
    expect(actions.first).to_have_attribute("tabindex", "-1")
    assert actions.evaluate_all("buttons => buttons.every((b) => b.tabIndex === -1)")
    assert page.locator('#messages .msg[tabindex="0"]').evaluate_all("rows => rows.map((r) => r.textContent)") == [
        row(page, "Hello, Ben").text_content()
    ]
    mine = row(page, "Hello, Ben")
    mine.focus()
    mine.press("ArrowUp")
    bens = page.locator(f'#messages .msg[data-id="{from_ben.id}"]')
    expect(bens).to_be_focused()
    expect(bens).to_have_attribute("tabindex", "0")
    bens.press("Tab")
    expect(bens.get_by_role("button", name="Add reaction")).to_be_focused()
    expect(mine.locator(".msg-actions button").first).to_have_attribute("tabindex", "-1")

    # ArrowUp in the empty composer opens my last message in its editor; Escape closes it.
    composer = page.locator("#composer-input")
    composer.click()
    composer.press("ArrowUp")
    editor = page.get_by_role("textbox", name="Edit message")
    expect(editor).to_be_focused()
    expect(editor).to_have_value("Hello, Ben")
    editor.press("Escape")
    expect(editor).to_have_count(0)
    expect(composer).to_be_focused()

    page.goto(f"/rooms/{room.pk}/boards/{board.pk}/")
    expect(page.locator(".board")).to_have_attribute("data-rendered", re.compile(r"^\d+$"))
    check(page, findings, "board")

    page.goto("/account/")
    expect(page.get_by_label("Display name")).to_have_value("Ann Lovelace")
    check(page, findings, "account")

    # A workspace's members page as its owner sees it: every form of it (docs/workspaces.md).
    page.goto(f"/workspaces/{acme.slug}/members/")
    expect(page.get_by_label(f"Role of {ben.username}")).to_have_value("admin")
    check(page, findings, "workspace members")

    # Its audit log, as its owner browses it (docs/audit.md "Who reads the log").
    page.goto(f"/workspaces/{acme.slug}/audit/")
    expect(page.locator("#audit-entries tbody tr").first).to_be_visible()
    check(page, findings, "workspace audit log")

    failing = [f"{name}: {finding}" for name, found in findings.items() for finding in found]
    assert not failing, "axe found serious or critical violations:\n" + "\n".join(failing)
    assert len(findings) == 11
    assert errors == []
