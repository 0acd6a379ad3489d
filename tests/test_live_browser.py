"""The web client's live connection in a real browser (static/js/live.js, transports.js,
shared-connection.js): falling back to Server-Sent Events and long-polling when WebSocket is
blocked, knowing it is offline, knowing a silently dead socket by its unanswered ping, and one
connection for all the tabs of a browser.

Database setup happens before the `chromium` fixture starts (see tests/test_browser.py). Nothing
here sleeps: every wait is for something the page shows or a frame the route saw.
"""

import json
import re
import time
import urllib.request

from playwright.sync_api import expect
from prometheus_client.parser import text_string_to_metric_families

from tests import test_browser
from tests.test_browser import open_page, open_room, row, send, shown_sequences, sign_in, two_members

chromium = test_browser.chromium  # the fixture that launches Debian's Chromium

SOCKET = re.compile(r"/ws/$")
# Every text the connection badge showed, in order (the page's own states can be brief).
RECORD_BADGE = """
window.parleyBadges = [];
document.addEventListener("DOMContentLoaded", () => {
  const badge = document.getElementById("conn-badge");
  if (!badge) return;
  new MutationObserver(() => window.parleyBadges.push(badge.textContent))
    .observe(badge, { childList: true, characterData: true, subtree: true });
});
"""


def badges(page) -> list[str]:
    return page.evaluate("window.parleyBadges")


def test_chat_receipts_and_presence_work_over_sse_then_long_polling_when_websocket_is_blocked(
    start_server, chromium, make_user
):
    """Ann's browser cannot use a WebSocket (a route swallows it: it opens and nothing ever comes
    through, as some proxies do); Ben's can. Over SSE, then with SSE refused too over
    long-polling, chat, typing, edits, receipts and presence work both ways, and Ann's badge names the
    transport. Once the socket goes through again, her page moves back to it by itself.

    (A route handler cannot close the socket itself: with the sync API that call waits for the
    handler to return. So the page gives a socket 1 s here to say session.ready, 15 s normally.)"""
    ann, ben, room = two_members(make_user)
    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    ann_page = open_page(browser, base_url, errors)
    ann_page.add_init_script(
        "window.PARLEY_TEST_FAST_RECONNECT = true; window.PARLEY_TEST_UPGRADE_MS = 2000;"
        " window.PARLEY_TEST_TIMINGS = {websocketReadyTimeoutMs: 1000};"
    )
    blocked = {"socket": True}

    def swallow(ws) -> None:
        if not blocked["socket"]:
            ws.connect_to_server()
        # else: connected nowhere, and never a frame to the page

    ann_page.route_web_socket(SOCKET, swallow)
    sign_in(ann_page, ann.username)  # the home page finds the socket blocked; the tab remembers
    ann_page.goto(f"/rooms/{room.pk}/")
    badge = ann_page.locator("#conn-badge")
    expect(badge).to_have_text("Connected (SSE)", timeout=20_000)
    expect(badge).to_have_attribute("data-transport", "sse")
    ben_dot = ann_page.locator(f'.member[data-user-id="{ben.pk}"] .presence-dot')
    expect(ben_dot).to_have_attribute("data-status", "offline")

    # Ben comes in over the socket: Ann's page hears of it, and he sees her as online.
    ben_page = open_page(browser, base_url, errors)
    open_room(ben_page, ben, room)
    expect(ben_dot).to_have_attribute("data-status", "online")
    ann_dot = ben_page.locator(f'.member[data-user-id="{ann.pk}"] .presence-dot')
    expect(ann_dot).to_have_attribute("data-status", "online")

    def chat_both_ways(mine: str, theirs: str) -> None:
        box = ann_page.locator("#composer-input")
        box.click()
        box.press_sequentially(mine)  # typing goes over REST too
        expect(ben_page.locator("#typing-text")).to_have_text(f"{ann.username} is typing…")
        box.press("Enter")  # the send goes over REST; its ack settles her pending row
        expect(row(ben_page, mine)).to_be_visible()
        send(ben_page, theirs)
        expect(row(ann_page, theirs)).to_be_visible()
        expect(ann_page.locator("#pending > li")).to_have_count(0)
        # Receipts both ways: Ben read Ann's message, Ann's page read Ben's (REST receipts).
        expect(row(ann_page, mine).get_by_test_id("receipt")).to_have_text(f"Read by {ben.username}")
        expect(row(ben_page, theirs).get_by_test_id("receipt")).to_have_text(f"Read by {ann.username}")

    chat_both_ways("Can you hear me?", "Loud and clear")
    # An edit over REST reaches Ben.
    mine = row(ann_page, "Can you hear me?")
    mine.hover()
    mine.get_by_role("button", name="Edit message").click()
    ann_page.get_by_role("textbox", name="Edit message").fill("Can you hear me now?")
    ann_page.get_by_role("textbox", name="Edit message").press("Enter")
    expect(row(ben_page, "Can you hear me now?")).to_contain_text("(edited)")

    # A cut: the stream resumes from the last event's id, and what Ben said meanwhile comes
    # over it (the page syncs nothing: no /changes/ request).
    requests: list[str] = []
    ann_page.on("request", lambda request: requests.append(request.url))
    ann_page.context.set_offline(True)
    expect(badge).to_have_text("Offline")
    send(ben_page, "While you were out")
    ann_page.context.set_offline(False)
    expect(badge).to_have_text("Connected (SSE)")
    expect(row(ann_page, "While you were out")).to_be_visible()
    streams = [url for url in requests if "/api/v1/events/" in url]
    assert len(streams) == 1 and "?last_event_id=" in streams[0], streams
    assert not [url for url in requests if "/changes/" in url]

    # The event stream is refused too: after a reload the page falls back to long-polling.
    ann_page.context.route(re.compile(r"/api/v1/events/"), lambda route: route.abort())
    ann_page.reload()
    expect(badge).to_have_text("Connected (long-polling)", timeout=20_000)
    expect(badge).to_have_attribute("data-transport", "poll")
    expect(ben_dot).to_have_attribute("data-status", "online")
    # (Whether Ben sees Ann, a poller, as online is the server's business: its poll presence beat
    # can fail today, "heartbeat flush failed: CurrentThreadExecutor already quit", see the report.)
    chat_both_ways("And now?", "Still here")
    for page in (ann_page, ben_page):
        expect(page.locator("#messages [data-sequence]")).to_have_count(5)
        assert shown_sequences(page) == [1, 2, 4, 5, 6]  # the edit took number 3
    # Ben leaves: Ann's page hears it over the poll.
    ben_page.context.close()
    expect(ben_dot).to_have_attribute("data-status", "offline", timeout=15_000)

    # The socket goes through again: the page, trying it every 2 s here (minutes normally), moves
    # back up by itself.
    blocked["socket"] = False
    expect(badge).to_have_text("Connected", timeout=15_000)
    expect(badge).to_have_attribute("data-transport", "websocket")
    send(ann_page, "Back on the socket")
    expect(row(ann_page, "Back on the socket")).to_be_visible()
    expect(ann_page.locator("#pending > li")).to_have_count(0)
    assert errors == []


def test_offline_is_shown_at_once_and_a_silently_dead_socket_is_found_by_its_ping(start_server, chromium, make_user):
    ann, ben, room = two_members(make_user)
    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    ann_page = open_page(browser, base_url, errors)
    ann_page.add_init_script(RECORD_BADGE)
    # The ping rule's own timings (3 s without an answer, then 6 s without a frame: about 10 s
    # from a send) are static/js/tests/transports.test.js's; here a third of them.
    ann_page.add_init_script(
        "window.PARLEY_TEST_FAST_RECONNECT = true;"
        " window.PARLEY_TEST_TIMINGS = {answerGraceMs: 1000, pongTimeoutMs: 2000};"
    )
    # Every socket of Ann's page goes through here; `silence` makes one of them drop every frame
    # both ways from then on, as a dead network path does (no close ever comes).
    sockets: list[dict] = []

    def relay(ws) -> None:
        server = ws.connect_to_server()
        entry = {"dead": False, "pings": 0}
        sockets.append(entry)

        def to_page(text) -> None:
            if not entry["dead"]:
                ws.send(text)

        def to_server(text) -> None:
            if entry["dead"]:
                entry["pings"] += json.loads(text).get("type") == "ping"
                return
            server.send(text)

        server.on_message(to_page)
        ws.on_message(to_server)

    ann_page.route_web_socket(SOCKET, relay)
    ben_page = open_page(browser, base_url, errors)
    open_room(ann_page, ann, room)
    open_room(ben_page, ben, room)
    badge = ann_page.locator("#conn-badge")

    # The browser goes offline: the page says so at once (no waiting for TCP), and a message
    # written meanwhile waits, saying it is not sent yet.
    ann_page.context.set_offline(True)
    expect(badge).to_have_text("Offline", timeout=2000)
    expect(badge).to_have_attribute("data-state", "offline")
    send(ann_page, "Typed on the train")
    pending = ann_page.locator("#pending > li")
    expect(pending).to_have_count(1)
    expect(pending.locator(".msg-status")).to_have_text("Not sent yet — offline")
    send(ben_page, "Are you there?")
    expect(row(ben_page, "Are you there?")).to_be_visible()
    # Back online: connected again at once, the message delivered, and what Ben said caught up.
    ann_page.context.set_offline(False)
    expect(badge).to_have_text("Connected")
    expect(row(ben_page, "Typed on the train")).to_be_visible()
    expect(row(ann_page, "Are you there?")).to_be_visible()
    expect(pending).to_have_count(0)

    # Now the socket dies silently. A message sent on it is not answered: within seconds the
    # page has pinged, heard nothing, given the socket up and sent the message on a new one.
    dead, count = sockets[-1], len(sockets)
    shown_before = len(badges(ann_page))
    dead["dead"] = True
    send(ann_page, "Sent into the void")
    expect(row(ben_page, "Sent into the void")).to_be_visible(timeout=15_000)
    assert dead["pings"] >= 1
    assert len(sockets) > count
    expect(badge).to_have_text("Connected")
    expect(pending).to_have_count(0)
    shown = badges(ann_page)
    assert "Offline" in shown[:shown_before]
    assert shown[shown_before:][-2:] == ["Reconnecting…", "Connected"]  # the dead socket was shown as such
    for page in (ann_page, ben_page):
        expect(page.locator("#messages [data-sequence]")).to_have_count(3)
        assert shown_sequences(page) == [1, 2, 3]
    assert errors == []


METRICS_TOKEN = "live-browser-metrics-token-0123456789"


def server_sockets(base_url: str) -> tuple[float, float]:
    """(WebSocket connections open now, accepted so far) as the server counts them (/metrics)."""
    request = urllib.request.Request(f"{base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        families = text_string_to_metric_families(response.read().decode())
        found = {
            sample.name: sample.value
            for family in families
            for sample in family.samples
            if sample.labels.get("transport") == "socket"
        }
    return found.get("parley_connections_open", 0.0), found.get("parley_connections_total", 0.0)


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    """Until `condition()` holds (a bound for a loaded machine, not a measurement)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {timeout} s"
        time.sleep(0.05)


def test_the_tabs_of_one_browser_share_one_connection_and_a_new_leader_takes_over(start_server, chromium, make_user):
    """Three tabs of Ann's browser (one context) show the room live over ONE socket, counted by the
    server: the first tab leads (its socket), the others send and receive through it, each
    showing the connection's true state. When the leading tab closes, another leads within 2 s
    and connects; live updates go on in both. Signing out in one tab signs out the others."""
    ann, ben, room = two_members(make_user)
    base_url = start_server(METRICS_TOKEN=METRICS_TOKEN)
    browser = chromium()
    errors: list[str] = []
    ben_page = open_page(browser, base_url, errors)
    open_room(ben_page, ben, room)
    first = open_page(browser, base_url, errors)
    open_room(first, ann, room)
    # Ben's socket and Ann's (the sockets of their home pages, before, have closed).
    wait_for(lambda: server_sockets(base_url)[0] == 2, "two sockets open")
    accepted = server_sockets(base_url)[1]

    tabs = [first]
    for _ in range(2):
        tab = first.context.new_page()
        tab.on("pageerror", lambda error, tab=tab: errors.append(f"{tab.url}: {error}"))
        tab.goto(f"/rooms/{room.pk}/")
        expect(tab.locator("#conn-badge")).to_have_text("Connected")
        tabs.append(tab)
    roles = [tab.locator("html").get_attribute("data-live-role") for tab in tabs]
    assert roles == ["leader", "follower", "follower"]
    assert server_sockets(base_url) == (2, accepted)  # no tab opened a socket of its own

    send(ben_page, "Hello, three tabs")
    for tab in tabs:
        expect(row(tab, "Hello, three tabs")).to_be_visible()
    send(tabs[1], "From the second tab")  # a follower's send: its ack comes back to it
    expect(row(ben_page, "From the second tab")).to_be_visible()
    for tab in tabs:
        expect(row(tab, "From the second tab")).to_be_visible()
    expect(tabs[1].locator("#pending > li")).to_have_count(0)

    # The leading tab closes: the next one waiting for the lock leads and connects.
    closed_at = time.time() * 1000
    tabs[0].close()
    rest = tabs[1:]
    wait_for(lambda: any(tab.locator("html").get_attribute("data-live-role") == "leader" for tab in rest), "led")
    leader = next(tab for tab in rest if tab.locator("html").get_attribute("data-live-role") == "leader")
    took_over = leader.evaluate("window.parleyLive.leaderSince") - closed_at
    assert took_over <= 2000, f"a new leader after {took_over:.0f} ms"
    for tab in rest:
        expect(tab.locator("#conn-badge")).to_have_text("Connected", timeout=20_000)
    wait_for(lambda: server_sockets(base_url) == (2, accepted + 1), "one socket of Ann's, the new leader's")
    send(ben_page, "After the handover")
    for tab in rest:
        expect(row(tab, "After the handover")).to_be_visible()
    follower = next(tab for tab in rest if tab is not leader)
    send(follower, "Still one connection")
    expect(row(ben_page, "Still one connection")).to_be_visible()
    expect(follower.locator("#pending > li")).to_have_count(0)
    for tab in rest:
        assert shown_sequences(tab) == [1, 2, 3, 4]

    # Signing out in one tab signs out the other at once (and its connection closes).
    follower.get_by_role("button", name="Sign out").click()
    expect(leader.locator("#conn-badge")).to_have_text("Signed out")
    wait_for(lambda: server_sockets(base_url)[0] == 1, "only Ben's socket open")  # Ben's
    assert errors == []
