"""The web UI end to end: headless Chromium (Debian's) against real server processes (uvicorn, as in production).

Playwright's sync API runs an event loop in this thread once started, and Django refuses ORM
calls while a loop runs here. So every test does its database setup first and only then calls
the `chromium` fixture; the fixture is closed before `start_server` (and the test database) are
torn down.
"""

import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PASSWORD = "pale-orchid-lantern-93"
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture
def chromium(start_server) -> Iterator[Callable]:
    """Returns a function that launches Chromium. Call it after all database setup (see above)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing; browser tests drive Debian's Chromium. "
            "Install it with: apt-get update && apt-get install -y chromium",
            pytrace=False,
        )
    started: dict = {}

    def launch():
        started["playwright"] = sync_playwright().start()
        started["browser"] = started["playwright"].chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        return started["browser"]

    yield launch
    if "browser" in started:
        started["browser"].close()
    if "playwright" in started:
        started["playwright"].stop()


# Runs first in every document of a test's pages: each Content-Security-Policy violation (inline
# script or style, eval, a source the policy does not list) is reported to the test as an error.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(`${event.effectiveDirective} refused ${event.blockedURI || "?"}`
    + ` (${event.sourceFile || event.documentURI}:${event.lineNumber}) ${event.sample}`);
}, true);
"""


def open_page(browser, base_url: str, errors: list[str], viewport: dict = VIEWPORT):
    """A page in its own context (own cookies, so its own user), recording script errors and
    Content-Security-Policy violations (of every page of the context)."""
    context = browser.new_context(base_url=base_url, viewport=viewport)
    context.set_default_timeout(10_000)
    context.expose_binding(
        "reportCspViolation", lambda source, text: errors.append(f"{source['page'].url}: CSP violation: {text}")
    )
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
    return page


def sign_up(page, username: str) -> None:
    page.goto("/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_test_id("current-user")).to_have_text(username)
    expect(page.get_by_role("heading", name="Your rooms")).to_be_visible()


def sign_in(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("current-user")).to_have_text(username)


def send(page, text: str) -> None:
    """Type into the composer and press Enter (Shift+Enter for line breaks)."""
    box = page.locator("#composer-input")
    box.click()
    for index, line in enumerate(text.split("\n")):
        if index:
            box.press("Shift+Enter")
        box.press_sequentially(line)
    box.press("Enter")


def shown_sequences(page) -> list[int]:
    return page.locator("#messages [data-sequence]").evaluate_all("rows => rows.map(r => Number(r.dataset.sequence))")


def test_two_people_chat_live_through_the_ui(start_server, chromium, tmp_path):
    base_url = start_server(ATTACHMENT_LOCAL_DIR=str(tmp_path))  # no bucket: Parley's local store
    browser = chromium()
    suffix = uuid.uuid4().hex[:6]
    alice_name, bob_name, room_name = f"alice{suffix}", f"bob{suffix}", "Launch plans"
    errors: list[str] = []
    alice = open_page(browser, base_url, errors)
    bob = open_page(browser, base_url, errors)

    # Bob gets an account, signs out, and signs back in: every step through the forms.
    sign_up(bob, bob_name)
    bob.get_by_role("button", name="Sign out").click()
    expect(bob).to_have_url(re.compile(r"/login/"))
    sign_in(bob, bob_name)
    expect(bob.locator("#my-rooms-empty")).to_be_visible()

    # Alice signs up and creates a private room.
    sign_up(alice, alice_name)
    create = alice.locator("#create-room-form")
    create.get_by_label("Name").fill(room_name)
    create.get_by_label("Topic").fill("Everything for Thursday's release")
    create.get_by_label("Kind").select_option("private")
    create.get_by_role("button", name="Create room").click()
    expect(alice.locator("#room-name")).to_have_text(room_name)
    expect(alice.locator("#conn-badge")).to_have_text("Connected")
    expect(alice.locator("#conn-badge")).to_have_attribute("data-state", "connected")
    expect(alice.locator("#history-status")).to_contain_text("This is the beginning of the room")

    # She invites Bob (the form is folded away until asked for); his open home page lists the room
    # without a reload.
    alice.locator("#invite-details > summary").click()
    invite = alice.locator("#invite-form")
    invite.get_by_label("Username").fill(bob_name)
    invite.get_by_label("Role").select_option("member")
    invite.get_by_role("button", name="Invite").click()
    flash = alice.locator(".flash")
    expect(flash).to_contain_text(f"{bob_name} can now see this room.")
    flash.get_by_role("button", name="Dismiss notice").click()
    expect(flash).to_have_count(0)
    expect(alice.locator("#member-list")).to_contain_text(bob_name)
    expect(alice.locator("#conn-badge")).to_have_text("Connected")

    room_link = bob.locator("#my-rooms").get_by_role("link", name=re.compile(room_name))
    expect(room_link).to_be_visible()
    expect(bob.locator("#my-rooms-empty")).to_be_hidden()
    room_link.click()
    expect(bob.locator("#room-name")).to_have_text(room_name)
    expect(bob.locator("#conn-badge")).to_have_text("Connected")
    expect(bob.locator("#sidebar-rooms .is-active")).to_have_text(room_name)
    expect(bob.locator("#member-list .member")).to_have_count(2)

    # Alice writes (Enter sends); Bob sees it live. Then Bob answers (with a line break).
    send(alice, "Hi Bob, welcome aboard!")
    from_alice = bob.locator("[data-sequence]", has_text="Hi Bob, welcome aboard!")
    expect(from_alice).to_be_visible()
    expect(from_alice).to_contain_text(alice_name)
    expect(from_alice.locator("time")).to_have_text(re.compile(r"^\d{2}:\d{2}$"))

    send(bob, "Thanks Alice!\nHappy to help.")
    from_bob = alice.locator("[data-sequence]", has_text="Thanks Alice!")
    expect(from_bob).to_be_visible()
    assert from_bob.locator(".msg-body").inner_text() == "Thanks Alice!\nHappy to help."

    # Markup is text, never HTML.
    send(alice, "<b>x</b> & <img src=x onerror=alert(1)>")
    escaped = bob.locator("[data-sequence]", has_text="<b>x</b>")
    expect(escaped.locator(".msg-body")).to_have_text("<b>x</b> & <img src=x onerror=alert(1)>")
    assert escaped.locator("b, img").count() == 0

    # Both pages show the same three messages once each, in order, with nothing left pending.
    for page in (alice, bob):
        expect(page.locator("#messages [data-sequence]")).to_have_count(3)
        assert shown_sequences(page) == [1, 2, 3]
        expect(page.locator("#pending > li")).to_have_count(0)
    ids = alice.locator("#messages [data-sequence]").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert len(set(ids)) == 3 and all(ids)

    # Alice attaches a file and an image (the attach button's file input; drops and pastes fill the
    # same tray), and sends them without text once both uploads are complete.
    image = io.BytesIO()
    Image.new("RGB", (300, 200), (40, 90, 200)).save(image, format="PNG")
    alice.locator("#attach-input").set_input_files(
        [
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"see you thursday\n"},
            {"name": "plan.png", "mimeType": "image/png", "buffer": image.getvalue()},
        ]
    )
    expect(alice.locator("#composer-attachments [data-status=ready]")).to_have_count(2)
    alice.locator("#composer-input").press("Enter")
    expect(alice.locator("#composer-attachments")).to_be_hidden()
    shared = bob.locator("[data-sequence='4']")
    expect(shared.locator(".attachment-file")).to_contain_text("notes.txt")
    # No Celery worker here: the image's thumbnail stays pending (tests/test_attachments.py makes them).
    expect(shared.locator(".attachment-placeholder")).to_contain_text("plan.png")
    # Bob's link goes through the membership check to the file.
    download = bob.request.get(shared.locator(".attachment-file").get_attribute("href"))
    assert download.ok and download.body() == b"see you thursday\n"

    # Bob answers in a thread with a file: the thread panel's reply box attaches as the composer does.
    first = bob.locator("[data-sequence='1']")
    first.hover()
    first.get_by_role("button", name="Reply in thread").click()
    bob.locator("#thread-attach-input").set_input_files(
        [{"name": "agenda.txt", "mimeType": "text/plain", "buffer": b"1. launch\n"}]
    )
    expect(bob.locator("#thread-attachments [data-status=ready]")).to_have_count(1)
    bob.get_by_role("textbox", name="Reply in this thread").fill("Agenda attached")
    bob.get_by_role("textbox", name="Reply in this thread").press("Enter")
    expect(bob.locator("#thread-attachments")).to_be_hidden()
    reply = bob.locator("#thread-replies .msg", has_text="Agenda attached")
    expect(reply.locator(".attachment-file")).to_contain_text("agenda.txt")
    expect(alice.locator("#messages .msg", has_text="Agenda attached").locator(".attachment-file")).to_contain_text(
        "agenda.txt"
    )

    ARTIFACTS.mkdir(exist_ok=True)
    alice.screenshot(path=str(ARTIFACTS / "chat-alice.png"))
    bob.screenshot(path=str(ARTIFACTS / "chat-bob.png"))
    assert errors == []


def test_scroll_back_loads_all_history_exactly_once(start_server, chromium, make_user):
    from messaging.services import message_send
    from rooms.services import room_create

    reader = make_user(password=PASSWORD)
    room = room_create(creator=reader, name="Archive", topic="Everything we ever said", kind="public")
    for number in range(1, 121):
        message_send(user=reader, room_id=room.pk, content=f"Message number {number}", client_msg_id=uuid.uuid4())

    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    page = open_page(browser, base_url, errors)
    sign_in(page, reader.username)
    page.goto(f"/rooms/{room.pk}/")

    # The newest page first, scrolled to the bottom.
    expect(page.locator("#messages [data-sequence]")).to_have_count(50)
    assert shown_sequences(page) == list(range(71, 121))
    expect(page.locator('[data-sequence="120"]')).to_be_in_viewport()
    expect(page.get_by_text("This is the beginning of the room")).to_have_count(0)

    # Scrolling to the top loads the page before, without moving what the reader looks at.
    scroller = page.locator("#scroller")
    anchor = page.locator('[data-sequence="72"]')
    offset = "(el) => el.getBoundingClientRect().top - document.getElementById('scroller').getBoundingClientRect().top"
    scroller.evaluate("(el) => { el.scrollTop = 0; }")
    before = anchor.evaluate(offset)
    expect(page.locator("#messages [data-sequence]")).to_have_count(100)
    assert abs(anchor.evaluate(offset) - before) <= 2

    # And again until the first message; then the beginning marker shows.
    for _ in range(5):
        if page.locator('[data-sequence="1"]').count():
            break
        count = page.locator("#messages [data-sequence]").count()
        scroller.evaluate("(el) => { el.scrollTop = 0; }")
        page.wait_for_function("n => document.querySelectorAll('#messages [data-sequence]').length > n", arg=count)
    expect(page.locator('[data-sequence="1"]')).to_have_count(1)
    expect(page.get_by_text("This is the beginning of the room")).to_be_visible()
    assert shown_sequences(page) == list(range(1, 121))
    assert page.locator("#messages [data-sequence]").count() == 120

    scroller.evaluate("(el) => { el.scrollTop = 0; }")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "scroll-back.png"))
    assert errors == []


def test_missed_frames_are_fetched_and_failed_sends_can_be_retried(start_server, chromium, make_user):
    """Between the page and the real server sits a WebSocket route that loses one message.new
    and answers one send with an error frame, the way a flaky network or server would."""
    from rooms.services import membership_add, room_create

    ann, oli = make_user(password=PASSWORD), make_user(password=PASSWORD)
    room = room_create(creator=ann, name="Ops", kind="private")
    membership_add(actor=room.memberships.get(user=ann), user=oli)

    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    ann_page, oli_page = open_page(browser, base_url, errors), open_page(browser, base_url, errors)
    tampered = {"dropped": 0, "failed": 0}

    def flaky(ws) -> None:
        server = ws.connect_to_server()

        def to_page(text) -> None:
            frame = json.loads(text)
            if frame["type"] == "message.new" and frame["message"]["content"] == "lost in transit":
                if not tampered["dropped"]:
                    tampered["dropped"] += 1
                    return
            ws.send(text)

        def to_server(text) -> None:
            frame = json.loads(text)
            if frame.get("content") == "fails once" and not tampered["failed"]:
                tampered["failed"] += 1
                error = {"type": "error", "code": "internal", "message": "Something went wrong; please retry."}
                ws.send(json.dumps({**error, "ref": frame["client_msg_id"]}))
                return
            server.send(text)

        server.on_message(to_page)
        ws.on_message(to_server)

    ann_page.route_web_socket(re.compile(r"/ws/$"), flaky)
    for page, user in ((ann_page, ann), (oli_page, oli)):
        sign_in(page, user.username)
        page.goto(f"/rooms/{room.pk}/")
        expect(page.locator("#conn-badge")).to_have_text("Connected")

    # Oli's first message never reaches Ann's socket; the next one reveals the gap, and the page
    # fetches what it missed over REST.
    send(oli_page, "lost in transit")
    send(oli_page, "arrives fine")
    expect(ann_page.locator("[data-sequence]", has_text="arrives fine")).to_be_visible()
    expect(ann_page.locator("[data-sequence]", has_text="lost in transit")).to_be_visible()
    assert tampered["dropped"] == 1

    # Ann's send is refused once: it stays on screen as failed, and Retry delivers it.
    send(ann_page, "fails once")
    failed = ann_page.locator("#pending li.is-failed")
    expect(failed).to_contain_text("Something went wrong; please retry.")
    failed.get_by_role("button", name="Retry").click()
    expect(oli_page.locator("[data-sequence]", has_text="fails once")).to_be_visible()
    expect(ann_page.locator("#pending > li")).to_have_count(0)
    for page in (ann_page, oli_page):
        expect(page.locator("#messages [data-sequence]")).to_have_count(3)
        assert shown_sequences(page) == [1, 2, 3]
    assert errors == []


def in_thread(function: Callable, *args):
    """Run ORM code while Playwright's loop runs in this thread (Django refuses it here)."""
    from django.db import connection

    def run():
        try:
            return function(*args)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def room_history(room_id) -> list[tuple[str, int, str]]:
    """(id, sequence, text as the page shows it) of every message in the room, from PostgreSQL."""
    from messaging.models import Message

    rows = []
    for message in Message.objects.filter(room_id=room_id).order_by("sequence"):
        if message.deleted_at:
            text = "This message was deleted."
        else:
            text = message.content + (" (edited)" if message.edited_at else "")
        rows.append((str(message.id), message.sequence, text))
    return rows


def shown_history(page) -> list[tuple[str, int, str]]:
    return [
        (row["id"], row["sequence"], row["text"])
        for row in page.locator("#messages [data-id]").evaluate_all(
            """rows => rows.map(r => ({id: r.dataset.id, sequence: Number(r.dataset.sequence),
                                       text: r.querySelector('.msg-body').textContent}))"""
        )
    ]


def test_a_page_survives_its_server_being_killed_and_restarted(start_server, chromium, make_user):
    """Ann's server is SIGKILLed under her open page. While it is down Ben (on another server
    process) sends, edits and deletes, and Ann writes a message of her own. When her server comes
    back on the same port, her page reconnects by itself and shows exactly the database's history:
    nothing missing, nothing twice, her offline message sent once."""
    from messaging.services import message_send
    from rooms.services import membership_add, room_create

    ann, ben = make_user(password=PASSWORD), make_user(password=PASSWORD)
    room = room_create(creator=ann, name="Incident", kind="private")
    membership_add(actor=room.memberships.get(user=ann), user=ben)
    message_send(user=ben, room_id=room.pk, content="Draft: db is slow", client_msg_id=uuid.uuid4())
    message_send(user=ann, room_id=room.pk, content="Looking", client_msg_id=uuid.uuid4())

    ann_url, ben_url = start_server(), start_server()
    browser = chromium()
    errors: list[str] = []
    ann_page, ben_page = open_page(browser, ann_url, errors), open_page(browser, ben_url, errors)
    # Cap the reconnect back-off at 1 s (the real cap is 30 s; see live.js).
    ann_page.add_init_script("window.PARLEY_TEST_FAST_RECONNECT = true;")
    for page, user in ((ann_page, ann), (ben_page, ben)):
        open_room(page, user, room)
        expect(page.locator("#messages [data-id]")).to_have_count(2)
    send(ann_page, "Before the crash")
    expect(ben_page.locator("#messages [data-id]")).to_have_count(3)

    start_server.kill(ann_url)
    badge = ann_page.locator("#conn-badge")
    expect(badge).to_have_text("Reconnecting…")
    expect(badge).to_have_attribute("data-state", "reconnecting")

    # Meanwhile: Ben sends two messages, fixes his draft and deletes one of the new ones.
    send(ben_page, "Replica lag is 40 s")
    send(ben_page, "Failing over now")
    draft = row(ben_page, "Draft: db is slow")
    draft.hover()
    draft.get_by_role("button", name="Edit message").click()
    ben_page.get_by_role("textbox", name="Edit message").fill("Root cause: db is slow")
    ben_page.get_by_role("textbox", name="Edit message").press("Enter")
    lag = row(ben_page, "Replica lag is 40 s")
    lag.hover()
    lag.get_by_role("button", name="Delete message").click()
    ben_page.get_by_role("dialog", name="Delete message?").get_by_role("button", name="Delete").click()
    expect(ben_page.locator("#messages .msg-deleted")).to_have_count(1)
    # ...and Ann writes while disconnected: it waits on her page, marked as not sent yet.
    send(ann_page, "Written while offline")
    expect(ann_page.locator("#pending > li")).to_have_count(1)
    ARTIFACTS.mkdir(exist_ok=True)
    ann_page.screenshot(path=str(ARTIFACTS / "reconnecting.png"))

    start_server(int(ann_url.rsplit(":", 1)[1]))
    expect(badge).to_have_text("Connected", timeout=20_000)
    expect(ann_page.locator("#pending > li")).to_have_count(0)
    expect(ann_page.locator("#messages [data-id]")).to_have_count(6)
    expect(ben_page.locator("#messages [data-id]")).to_have_count(6)

    history = in_thread(room_history, room.pk)
    # The edit and the delete took numbers 6 and 7 of the room's sequence.
    assert [sequence for _, sequence, _ in history] == [1, 2, 3, 4, 5, 8]
    assert [text for *_, text in history] == [
        "Root cause: db is slow (edited)",
        "Looking",
        "Before the crash",
        "This message was deleted.",
        "Failing over now",
        "Written while offline",
    ]
    assert shown_history(ann_page) == history
    assert shown_history(ben_page) == history
    assert errors == []


# ---------------------------------------------------------------------------------------------
# Room management (docs/rooms-ui.md)

PHONE = {"width": 390, "height": 760}


def test_room_management_through_the_member_menu(start_server, chromium, make_user):
    """Ann hands the room to Ben from his member menu, renames it and leaves after confirming; Ben
    follows it live on a phone: tab title and drawer badge count his other room's message, members
    sit behind a button, nothing is below the composer, he becomes the owner and sees the new name
    everywhere on his screen. A long message folds."""
    from messaging.services import message_send
    from rooms.services import membership_add, room_create

    ann, ben, room = two_members(make_user)
    long_text = "\n".join(f"Step {n}: check the numbers again." for n in range(1, 31))
    message_send(user=ann, room_id=room.pk, content=long_text, client_msg_id=uuid.uuid4())
    side = room_create(creator=ann, name="Side", kind="private")
    membership_add(actor=side.memberships.get(user=ann), user=ben)
    message_send(user=ann, room_id=side.pk, content="Over here", client_msg_id=uuid.uuid4())

    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    ann_page = open_page(browser, base_url, errors)
    ben_page = open_page(browser, base_url, errors, viewport=PHONE)
    open_room(ann_page, ann, room)
    open_room(ben_page, ben, room)

    # The long message is folded until asked for.
    folded = row(ann_page, "Step 1:")
    folded.get_by_role("button", name="Show more").click()
    expect(folded.get_by_role("button", name="Show less")).to_have_attribute("aria-expanded", "true")

    # Ben's phone: the unread message elsewhere is in the tab title and on the room-list button; the
    # members panel is a drawer; the composer is the last thing on the screen.
    expect(ben_page).to_have_title("(1) Planning · Parley")
    expect(ben_page.get_by_test_id("drawer-unread")).to_have_text("1")
    composer = ben_page.locator("#composer").bounding_box()
    assert composer is not None and composer["y"] + composer["height"] >= PHONE["height"] - 1
    members_drawer = ben_page.locator("#members-drawer")
    expect(members_drawer).not_to_be_in_viewport()
    ben_page.get_by_role("button", name="Rooms", exact=True).click()
    expect(ben_page.locator(f'#sidebar-rooms [data-room-id="{side.pk}"]').get_by_test_id("unread")).to_have_text("1")
    ben_page.keyboard.press("Escape")
    ben_page.get_by_role("button", name="Members", exact=True).click()
    expect(members_drawer).to_be_in_viewport()
    expect(ben_page.locator("#room-settings-button")).to_be_hidden()

    # Ann opens Ben's menu and makes him the owner; she becomes an admin.
    ann_page.locator("#member-list").get_by_role("button", name=ben.username).click()
    menu = ann_page.get_by_role("menu", name=f"Actions for {ben.username}")
    expect(menu.get_by_role("menuitem")).to_have_text([f"Message {ben.username}", "Make owner…", "Remove from room…"])
    expect(menu.get_by_role("menuitemradio")).to_have_text(["Make admin", "Make member", "Make viewer"])
    menu.get_by_role("menuitem", name="Make owner…").click()
    confirm = ann_page.get_by_role("dialog", name=f"Make {ben.username} the owner?")
    confirm.get_by_role("button", name="Make owner").click()
    expect(ann_page.locator(f'#member-list [data-user-id="{ben.pk}"] .role-badge')).to_have_text("Owner")
    expect(ann_page.locator("#my-role")).to_have_text("Admin")
    expect(ben_page.locator("#my-role")).to_have_text("Owner")
    expect(ben_page.locator("#room-settings-button")).to_be_visible()

    # Ann renames the room, gives it a topic and makes it public: Ben's screen follows at once (the
    # title, its icon and topic, the tab title, his room list, the leave dialog, the settings form).
    ann_page.get_by_role("button", name="Room settings").click()
    settings_dialog = ann_page.get_by_role("dialog", name="Room settings")
    settings_dialog.get_by_label("Name").fill("Roadmap")
    settings_dialog.get_by_label("Topic").fill("Q3 plans")
    settings_dialog.get_by_label("Kind").select_option("public")
    settings_dialog.get_by_role("button", name="Save").click()
    expect(ann_page.locator(".flash")).to_contain_text("Room settings saved.")
    expect(ben_page.locator("#room-name")).to_have_text("Roadmap")
    expect(ben_page.locator("#room-topic")).to_have_text("Q3 plans")
    expect(ben_page.locator("#room-title .room-icon")).to_have_attribute("aria-label", "Public room")
    expect(ben_page).to_have_title("(1) Roadmap · Parley")
    ben_row = ben_page.locator(f'#sidebar-rooms [data-room-id="{room.pk}"]')
    expect(ben_row.locator("[data-room-name]")).to_have_text("Roadmap")
    expect(ben_row.locator("a")).to_have_attribute("title", "Q3 plans")
    expect(ben_page.locator("#leave-title")).to_have_text("Leave Roadmap?")
    expect(ben_page.locator("#room-settings-form [name=kind]")).to_have_value("public")

    # Leaving asks first: Cancel keeps her in; confirming takes her home without the room.
    ann_page.get_by_role("button", name="Leave room", exact=True).click()
    leave = ann_page.get_by_role("dialog", name="Leave Roadmap?")
    leave.get_by_role("button", name="Cancel").click()
    expect(leave).to_be_hidden()
    ann_page.get_by_role("button", name="Leave room", exact=True).click()
    expect(leave.get_by_label("You own this room. Hand it to")).to_be_hidden()  # Ben owns it now
    leave.get_by_role("button", name="Leave room").click()
    expect(ann_page.locator(".flash")).to_contain_text("You left Roadmap.")
    expect(ann_page.locator(f'#my-rooms [data-room-id="{room.pk}"]')).to_have_count(0)
    expect(ben_page.locator("#member-list .member")).to_have_count(1)
    ARTIFACTS.mkdir(exist_ok=True)
    ben_page.screenshot(path=str(ARTIFACTS / "room-phone-members.png"))
    assert errors == []


# ---------------------------------------------------------------------------------------------
# Edits, deletions, receipts, unread counts, typing and presence


def two_members(make_user, name: str = "Planning", owner_name: str = ""):
    """Two users (an owner, with `owner_name` as display name, and a member) in a private room,
    made through the services."""
    from rooms.services import membership_add, room_create

    owner, member = make_user(password=PASSWORD, display_name=owner_name), make_user(password=PASSWORD)
    room = room_create(creator=owner, name=name, kind="private")
    membership_add(actor=room.memberships.get(user=owner), user=member)
    return owner, member, room


def open_room(page, user, room) -> None:
    sign_in(page, user.username)
    page.goto(f"/rooms/{room.pk}/")
    expect(page.locator("#conn-badge")).to_have_text("Connected")


def two_pages_in_a_room(start_server, chromium, make_user, ann_name: str = ""):
    """Ann (owner; display name `ann_name`) and Ben (member) of a private room, each with the room
    open in a browser."""
    ann, ben, room = two_members(make_user, owner_name=ann_name)
    return (ann, ben, room, *two_pages(start_server, chromium, ann, ben, room))


def two_pages(start_server, chromium, ann, ben, room):
    """Ann's and Ben's pages of `room`, each in a browser context of its own; and the list that
    collects both pages' script errors."""
    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    ann_page, ben_page = open_page(browser, base_url, errors), open_page(browser, base_url, errors)
    open_room(ann_page, ann, room)
    open_room(ben_page, ben, room)
    return ann_page, ben_page, errors


def row(page, text: str):
    return page.locator("#messages .msg[data-id]", has_text=text)


def shown_ids(page) -> list[str]:
    return page.locator("#messages [data-id]").evaluate_all("rows => rows.map(r => r.dataset.id)")


def test_edits_and_deletions_reach_the_other_browser_live(start_server, chromium, make_user):
    ann, ben, room, ann_page, ben_page, errors = two_pages_in_a_room(start_server, chromium, make_user, "Ann Lee")

    send(ann_page, "Lunch at 12?")
    send(ann_page, "Bring the slides pls")
    send(ben_page, "Sounds good")
    for page in (ann_page, ben_page):
        expect(page.locator("#messages [data-id]")).to_have_count(3)

    # A member gets no actions on someone else's message.
    on_ben = row(ben_page, "Lunch at 12?")
    on_ben.hover()
    expect(on_ben.get_by_role("button", name="Edit message")).to_have_count(0)
    expect(on_ben.get_by_role("button", name="Delete message")).to_have_count(0)

    # Ann edits her message inline: Escape cancels, Enter saves.
    mine = row(ann_page, "Lunch at 12?")
    mine.hover()
    mine.get_by_role("button", name="Edit message").click()
    editor = ann_page.get_by_role("textbox", name="Edit message")
    expect(editor).to_be_focused()
    expect(editor).to_have_value("Lunch at 12?")
    editor.fill("Never mind")
    editor.press("Escape")
    expect(editor).to_have_count(0)
    expect(mine.locator(".msg-body")).to_have_text("Lunch at 12?")

    mine.hover()
    mine.get_by_role("button", name="Edit message").click()
    editor.fill("Lunch at 12:30?")
    editor.press("Enter")
    for page in (ann_page, ben_page):
        expect(row(page, "Lunch at 12:30?").locator(".msg-body")).to_have_text("Lunch at 12:30? (edited)")
        expect(row(page, "Lunch at 12?")).to_have_count(0)

    # Deleting asks first; cancelling keeps the message.
    slides = row(ann_page, "Bring the slides pls")
    slides_id = slides.get_attribute("data-id")
    slides.hover()
    slides.get_by_role("button", name="Delete message").click()
    dialog = ann_page.get_by_role("dialog", name="Delete message?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Bring the slides pls")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(slides.locator(".msg-body")).to_have_text("Bring the slides pls")

    slides.hover()
    slides.get_by_role("button", name="Delete message").click()
    dialog.get_by_role("button", name="Delete").click()
    for page in (ann_page, ben_page):
        tombstone = page.locator(f'#messages [data-id="{slides_id}"]')
        expect(tombstone.locator(".msg-body")).to_have_text("This message was deleted.")
        expect(page.get_by_text("Bring the slides pls")).to_have_count(0)

    # The room's owner may delete someone else's message, but not edit it.
    theirs = row(ann_page, "Sounds good")
    theirs.hover()
    expect(theirs.get_by_role("button", name="Edit message")).to_have_count(0)
    theirs.get_by_role("button", name="Delete message").click()
    dialog.get_by_role("button", name="Delete").click()
    for page in (ann_page, ben_page):
        expect(page.locator("#messages .msg-deleted")).to_have_count(2)
        expect(page.locator("#messages [data-id]")).to_have_count(3)
    assert shown_ids(ann_page) == shown_ids(ben_page)

    # Threads and reactions (issue 16): Ben replies in a thread, Ann sees it live and reacts in
    # her thread panel, Ben sees the reaction live and adds his to it.
    lunch = row(ben_page, "Lunch at 12:30?")
    lunch.hover()
    lunch.get_by_role("button", name="Reply in thread").click()
    ben_panel = ben_page.locator("#thread-panel")
    expect(ben_panel.locator("#thread-root")).to_contain_text("Lunch at 12:30?")
    ben_page.get_by_role("textbox", name="Reply in this thread").fill("On my way")
    ben_page.get_by_role("textbox", name="Reply in this thread").press("Enter")
    expect(ben_panel.locator("#thread-replies .msg")).to_have_text(re.compile("On my way"))
    summary = row(ann_page, "Lunch at 12:30?").locator(".thread-summary")
    expect(summary).to_contain_text("1 reply")
    summary.click()
    ann_panel = ann_page.locator("#thread-panel")
    reply_row = ann_panel.locator("#thread-replies .msg", has_text="On my way")
    expect(reply_row).to_have_count(1)
    reply_row.hover()
    reply_row.get_by_role("button", name="Add reaction").click()
    ann_page.get_by_role("button", name="React with 🎉").click()
    ben_chip = ben_panel.locator('#thread-replies .reaction-chip[data-emoji="🎉"]')
    expect(ben_chip.locator(".reaction-count")).to_have_text("1")
    expect(ben_chip).to_have_attribute("aria-pressed", "false")
    expect(ben_chip).to_have_attribute("title", "Ann Lee reacted with 🎉")  # her display name
    ben_chip.click()
    ann_chip = ann_panel.locator('#thread-replies .reaction-chip[data-emoji="🎉"]')
    expect(ann_chip.locator(".reaction-count")).to_have_text("2")
    expect(ann_chip).to_have_attribute("aria-pressed", "true")
    # The reply is in both timelines too, marked as a thread reply, with the same chip.
    expect(row(ann_page, "On my way").locator(".thread-ref")).to_have_count(1)
    expect(row(ann_page, "On my way").locator(".reaction-count")).to_have_text("2")
    assert shown_ids(ann_page) == shown_ids(ben_page)

    # Ann takes a new display name: every place Ben's page shows her name redraws it live (her
    # member row, her rows' author lines in the timeline and the thread panel, the chips' tooltips
    # naming her), and so does her own page.
    from accounts.services import profile_update

    in_thread(lambda: profile_update(user=ann, display_name="Ann Lee-Smith"))
    expect(ben_page.locator(f'#member-list [data-user-id="{ann.pk}"] .member-name')).to_have_text("Ann Lee-Smith")
    expect(row(ben_page, "Lunch at 12:30?").locator(".msg-author")).to_have_text("Ann Lee-Smith")
    expect(ben_panel.locator("#thread-root .msg-author")).to_have_text("Ann Lee-Smith")
    expect(ben_chip).to_have_attribute("title", "Ann Lee-Smith, you reacted with 🎉")
    expect(row(ben_page, "On my way").locator(".reaction-chip")).to_have_attribute(
        "title", "Ann Lee-Smith, you reacted with 🎉"
    )
    expect(row(ann_page, "Lunch at 12:30?").locator(".msg-author")).to_have_text("Ann Lee-Smith")

    ARTIFACTS.mkdir(exist_ok=True)
    ben_page.screenshot(path=str(ARTIFACTS / "edit-delete-ben.png"))
    assert errors == []


def test_read_receipts_and_unread_counts(start_server, chromium, make_user):
    from messaging.services import message_send
    from rooms.services import membership_add, room_create

    ann, ben = make_user(password=PASSWORD), make_user(password=PASSWORD)
    design = room_create(creator=ann, name="Design", kind="private")
    random = room_create(creator=ann, name="Random", kind="private")
    for room in (design, random):
        membership_add(actor=room.memberships.get(user=ann), user=ben)
    message_send(user=ann, room_id=design.pk, content="The mockups are in the drive", client_msg_id=uuid.uuid4())
    message_send(user=ben, room_id=random.pk, content="Morning!", client_msg_id=uuid.uuid4())

    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    ann_home = open_page(browser, base_url, errors)
    sign_in(ann_home, ann.username)
    ann_room = ann_home.context.new_page()  # a second tab of the same session
    ann_room.on("pageerror", lambda error: errors.append(f"{ann_room.url}: {error}"))

    # The home page counts what Ben wrote while Ann was away.
    home_row = ann_home.locator(f'#my-rooms [data-room-id="{random.pk}"]')
    expect(home_row.get_by_test_id("unread")).to_have_text("1")
    expect(ann_home.locator(f'#my-rooms [data-room-id="{design.pk}"]').get_by_test_id("unread")).to_have_count(0)

    # Ann's last message in Design: nobody has it yet.
    ann_room.goto(f"/rooms/{design.pk}/")
    expect(ann_room.locator("#conn-badge")).to_have_text("Connected")
    status = row(ann_room, "The mockups are in the drive").get_by_test_id("receipt")
    expect(status).to_have_text("Sent")
    sidebar_random = ann_room.locator(f'#sidebar-rooms [data-room-id="{random.pk}"]')
    expect(sidebar_random.get_by_test_id("unread")).to_have_text("1")

    # Ben opens Design: Ann sees that he read it.
    ben_page = open_page(browser, base_url, errors)
    open_room(ben_page, ben, design)
    expect(status).to_have_text(f"Read by {ben.username}")

    # Ben writes in Random, which Ann has not open: both of her tabs count it.
    ben_page.goto(f"/rooms/{random.pk}/")
    expect(ben_page.locator("#conn-badge")).to_have_text("Connected")
    send(ben_page, "Anyone up for lunch?")
    expect(home_row.get_by_test_id("unread")).to_have_text("2")
    expect(sidebar_random.get_by_test_id("unread")).to_have_text("2")
    ARTIFACTS.mkdir(exist_ok=True)
    ann_home.screenshot(path=str(ARTIFACTS / "home-unread.png"))
    ann_room.screenshot(path=str(ARTIFACTS / "receipts-unread-sidebar.png"))

    # Ann opens Random in her room tab: reading it there clears the badge in her home tab too.
    sidebar_random.get_by_role("link").click()
    expect(ann_room.locator("#room-name")).to_have_text("Random")
    expect(ann_room.locator("#sidebar-rooms .is-active")).to_have_text("Random")
    expect(home_row.get_by_test_id("unread")).to_have_count(0)
    expect(ann_room.locator("#sidebar-rooms").get_by_test_id("unread")).to_have_count(0)

    # And Ben's own latest message in Random shows that Ann read it.
    expect(row(ben_page, "Anyone up for lunch?").get_by_test_id("receipt")).to_have_text(f"Read by {ann.username}")
    assert errors == []


def test_typing_shows_in_the_other_browser(start_server, chromium, make_user):
    ann, ben, room, ann_page, ben_page, errors = two_pages_in_a_room(start_server, chromium, make_user)
    typing = ann_page.locator("#typing-text")
    expect(typing).to_have_text("")

    box = ben_page.locator("#composer-input")
    box.click()
    box.press_sequentially("Let me check the calendar")
    expect(typing).to_have_text(f"{ben.username} is typing…")
    expect(ben_page.locator("#typing-text")).to_have_text("")  # nobody is told about their own typing
    ARTIFACTS.mkdir(exist_ok=True)
    ann_page.screenshot(path=str(ARTIFACTS / "typing.png"))

    # Sending ends it at once, well before the 5 s a typing frame lasts.
    box.press("Enter")
    expect(row(ann_page, "Let me check the calendar")).to_be_visible()
    expect(typing).to_have_text("", timeout=1500)

    # Typing that simply stops fades after about 5 s.
    box.press_sequentially("Hmm")
    expect(typing).to_have_text(f"{ben.username} is typing…")
    expect(typing).to_have_text("", timeout=8000)
    assert errors == []


def test_presence_dots_follow_the_other_person(start_server, chromium, make_user):
    ann, ben, room = two_members(make_user)
    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    ann_page = open_page(browser, base_url, errors)
    ann_page.clock.install()  # time flows as usual, and the test can also jump it forward
    # The home page opens a socket too, and on a busy machine it may open late: the room page's
    # socket is the last one the page opened.
    sockets = []
    ann_page.on("websocket", lambda socket: sockets.append(socket))
    sign_in(ann_page, ann.username)
    ann_page.goto(f"/rooms/{room.pk}/")
    expect(ann_page.locator("#conn-badge")).to_have_text("Connected")
    room_socket = sockets[-1]
    assert not room_socket.is_closed()

    ben_dot = ann_page.locator(f'.member[data-user-id="{ben.pk}"] .presence-dot')
    ann_dot = ann_page.locator(f'.member[data-user-id="{ann.pk}"] .presence-dot')
    expect(ann_dot).to_have_attribute("data-status", "online")
    expect(ann_dot).to_have_attribute("title", "Online")
    expect(ben_dot).to_have_attribute("data-status", "offline")
    expect(ben_dot).to_have_attribute("title", "Offline")

    # Ben signs in (his home page opens the socket): online for Ann without a reload.
    ben_page = open_page(browser, base_url, errors)
    sign_in(ben_page, ben.username)
    expect(ben_dot).to_have_attribute("data-status", "online")
    expect(ben_dot).to_have_attribute("title", "Online")
    ARTIFACTS.mkdir(exist_ok=True)
    ann_page.screenshot(path=str(ARTIFACTS / "presence.png"))

    # He closes the page: offline, with when he was last seen.
    ben_page.context.close()
    expect(ben_dot).to_have_attribute("data-status", "offline", timeout=15_000)
    expect(ben_dot).to_have_attribute("title", re.compile(r"^Offline — last seen \d{2}:\d{2}$"))

    # Every 30 s the page heartbeats, saying whether Ann did anything since the last beat.
    ann_page.mouse.move(300, 300)
    ann_page.mouse.move(320, 310)
    with room_socket.expect_event("framesent", lambda payload: '"heartbeat"' in payload) as beat:
        ann_page.clock.run_for(31_000)
    assert json.loads(beat.value) == {"type": "heartbeat", "active": True}
    with room_socket.expect_event("framesent", lambda payload: '"heartbeat"' in payload) as beat:
        ann_page.clock.run_for(31_000)
    assert json.loads(beat.value) == {"type": "heartbeat", "active": False}
    assert errors == []


def test_read_receipts_can_be_turned_off(start_server, chromium, make_user):
    from messaging.services import message_send

    ann, ben, room = two_members(make_user)
    message_send(user=ann, room_id=room.pk, content="Did you see the draft?", client_msg_id=uuid.uuid4())
    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    ann_page, ben_page = open_page(browser, base_url, errors), open_page(browser, base_url, errors)
    open_room(ann_page, ann, room)
    status = row(ann_page, "Did you see the draft?").get_by_test_id("receipt")
    expect(status).to_have_text("Sent")

    # Ben turns read receipts off in the settings menu; it sticks across a reload.
    sign_in(ben_page, ben.username)
    ben_page.get_by_role("button", name="Settings").click()
    switch = ben_page.get_by_role("switch", name="Send read receipts")
    expect(switch).to_be_checked()
    switch.uncheck()
    expect(ben_page.locator("#pref-status")).to_have_text("Read receipts are off.")
    ARTIFACTS.mkdir(exist_ok=True)
    ben_page.screenshot(path=str(ARTIFACTS / "settings-menu.png"))
    ben_page.keyboard.press("Escape")
    expect(ben_page.locator("#settings-menu")).to_be_hidden()
    ben_page.reload()
    expect(ben_page.get_by_role("switch", name="Send read receipts", include_hidden=True)).not_to_be_checked()

    # He reads the room: Ann learns it reached him, not that he read it.
    ben_page.goto(f"/rooms/{room.pk}/")
    expect(ben_page.locator("#conn-badge")).to_have_text("Connected")
    expect(status).to_have_text("Delivered")
    assert errors == []


# ---------------------------------------------------------------------------------------------
# Content-Security-Policy (core/csp.py): every page works under it; open_page reports violations


def settle(page) -> None:
    """Let violation events already queued in the page fire and reach the test."""
    page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 50))")


def test_no_page_violates_the_content_security_policy(start_server, chromium, make_user, django_user_model):
    from messaging.services import message_send
    from rooms.services import room_create

    ann = make_user(password=PASSWORD)
    room = room_create(creator=ann, name="Policies", kind="private")
    message_send(user=ann, room_id=room.pk, content="Already here", client_msg_id=uuid.uuid4())
    lobby = room_create(creator=make_user(), name="Lobby", kind="public")
    root = django_user_model.objects.create_superuser(f"root{uuid.uuid4().hex[:6]}", "root@example.com", PASSWORD)

    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    page = open_page(browser, base_url, errors)
    documents: list[tuple[str, str | None]] = []  # (url, its Content-Security-Policy) of every page loaded

    def record_document(response) -> None:
        if response.request.resource_type == "document":
            documents.append((response.url, response.header_value("Content-Security-Policy")))

    page.on("response", record_document)

    # Signed out: sign-up and sign-in pages, and the CSRF failure page (a stale token).
    for url in ("/signup/", "/login/"):
        response = page.goto(url)
        policy = response.header_value("Content-Security-Policy")
        assert "script-src 'self'" in policy and f"ws://{base_url.removeprefix('http://')}" in policy
        settle(page)
    page.locator("input[name=csrfmiddlewaretoken]").evaluate("(input) => { input.value = 'x'.repeat(64); }")
    page.get_by_label("Username").fill(ann.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="That form has expired")).to_be_visible()
    settle(page)

    # Signed in: home (its socket connects), the settings menu, a room (send, edit, the delete
    # dialog), a public room's preview, a page that does not exist.
    sign_in(page, ann.username)
    expect(page.get_by_role("heading", name="Your rooms")).to_be_visible()
    page.get_by_role("button", name="Settings").click()
    expect(page.locator("#settings-menu")).to_be_visible()
    page.keyboard.press("Escape")
    page.goto(f"/rooms/{room.pk}/")
    expect(page.locator("#conn-badge")).to_have_text("Connected")
    expect(row(page, "Already here")).to_be_visible()
    send(page, "Sent under a strict policy")
    expect(row(page, "Sent under a strict policy").get_by_test_id("receipt")).to_have_text("Sent")
    mine = row(page, "Sent under a strict policy")
    mine.hover()
    mine.get_by_role("button", name="Edit message").click()
    page.get_by_role("textbox", name="Edit message").fill("Edited under a strict policy")
    page.get_by_role("textbox", name="Edit message").press("Enter")
    expect(row(page, "Edited under a strict policy").locator(".msg-body")).to_contain_text("(edited)")
    mine = row(page, "Edited under a strict policy")
    mine.hover()
    mine.get_by_role("button", name="Delete message").click()
    page.get_by_role("dialog", name="Delete message?").get_by_role("button", name="Cancel").click()
    settle(page)
    page.goto(f"/rooms/{lobby.pk}/")
    expect(page.get_by_role("button", name="Join room")).to_be_visible()
    settle(page)
    assert page.goto("/no-such-page/").status == 404
    settle(page)

    # Django admin: sign-in, index, a list with filters and search, a change form, the user forms.
    admin = open_page(browser, base_url, errors)
    admin.on("response", record_document)
    admin.goto("/admin/login/")
    admin.get_by_label("Username").fill(root.username)
    admin.get_by_label("Password").fill(PASSWORD)
    admin.get_by_role("button", name="Log in").click()
    expect(admin.get_by_role("heading", name="Site administration")).to_be_visible()
    settle(admin)
    for url in (
        "/admin/rooms/room/?kind__exact=private",
        f"/admin/rooms/room/{room.pk}/change/",
        "/admin/accounts/user/add/",
        f"/admin/accounts/user/{ann.pk}/change/",
    ):
        assert admin.goto(url).ok, url
        settle(admin)
    assert errors == []
    # Every page above (redirects included) came with the policy.
    loaded = {url.removeprefix(base_url).split("?")[0] for url, _ in documents}
    assert {"/signup/", "/login/", "/", f"/rooms/{lobby.pk}/", "/no-such-page/", "/admin/"} <= loaded
    assert [url for url, policy in documents if not policy or "default-src 'none'" not in policy] == []

    # The check itself: an inline script and an inline style are refused, and reported.
    admin.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.inlineRan = true;";
            document.body.append(script);
            document.body.setAttribute("style", "outline: 1px solid red");
        }"""
    )
    settle(admin)
    assert admin.evaluate("window.inlineRan") is None
    assert len(errors) == 2 and "script-src-elem refused inline" in errors[0] and "style-src-attr" in errors[1], errors
