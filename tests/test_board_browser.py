"""Boards in the web UI, end to end: two (or three) browser contexts in headless Chromium against a
real server process, each signed in as its own user, drawing on the same board
(static/js/board/). The pages expose their board as window.parleyBoard; the tests compare the
documents (doc.toJSON(), the same rendering the server gives) and wait on DOM conditions only.

Database setup happens before the `chromium` fixture starts (see tests/test_browser.py)."""

import json
import re

import pytest
from playwright.sync_api import expect

from tests import test_browser
from tests.test_browser import PASSWORD, in_thread, open_page, sign_in

pytestmark = pytest.mark.browser

chromium = test_browser.chromium  # the fixture that launches Debian's Chromium

BOARD_JSON = "() => JSON.stringify(window.parleyBoard.doc.toJSON())"


def people_and_board(make_user, roles=("member",)):
    """An owner and one user per role in a private room with one board, made through the services."""
    from boards.services import board_create
    from rooms.services import membership_add, room_create

    owner = make_user(password=PASSWORD)
    room = room_create(creator=owner, name="Design", kind="private")
    others = []
    for role in roles:
        user = make_user(password=PASSWORD)
        membership_add(actor=room.memberships.get(user=owner), user=user, role=role)
        others.append(user)
    board = board_create(user=owner, room_id=room.pk, title="Sketches")
    return owner, others, room, board


def open_board(page, user, room, board) -> None:
    sign_in(page, user.username)
    page.goto(f"/rooms/{room.pk}/boards/{board.pk}/")
    expect(page.locator("[data-board-conn]")).to_have_attribute("data-state", "connected")
    expect(page.locator(".board")).to_have_attribute("data-rendered", re.compile(r"^\d+$"))


def elements(page) -> list[dict]:
    return json.loads(page.evaluate(BOARD_JSON))["elements"]


def settled(page) -> None:
    """Every local change of the page is acknowledged by the server."""
    expect(page.locator("[data-board-conn]")).to_have_attribute("data-pending", "0")


def converge(*pages) -> list[dict]:
    """Wait until every page shows the same document (after each has its changes acknowledged)."""
    for page in pages:
        settled(page)
    for _attempt in range(20):
        target = pages[0].evaluate(BOARD_JSON)
        try:
            for page in pages[1:]:
                page.wait_for_function(f"(target) => ({BOARD_JSON})() === target", arg=target, timeout=3000)
        except Exception:  # someone's later change is still on its way: take the newer document
            continue
        if pages[0].evaluate(BOARD_JSON) == target:
            return json.loads(target)["elements"]
    raise AssertionError(f"the boards did not converge: {[page.evaluate(BOARD_JSON) for page in pages]}")


def stage_box(page) -> dict:
    return page.locator("[data-stage]").bounding_box()


def drag(page, start, end, steps: int = 8) -> None:
    """Drag on the stage from `start` to `end` (points relative to the stage's top-left)."""
    box = stage_box(page)
    page.mouse.move(box["x"] + start[0], box["y"] + start[1])
    page.mouse.down()
    page.mouse.move(box["x"] + end[0], box["y"] + end[1], steps=steps)
    page.mouse.up()


def draw(page, tool: str, start, end) -> str:
    """Draw with a tool; returns the new element's id (the drawing selects it)."""
    before = {element["id"] for element in elements(page)}
    page.locator(f'[data-tool="{tool}"]').click()
    drag(page, start, end)
    page.wait_for_function("(n) => window.parleyBoard.doc.size > n", arg=len(before))
    (new,) = [element["id"] for element in elements(page) if element["id"] not in before]
    return new


def screen_of(page, element_id: str) -> tuple[float, float]:
    """The centre of an element on the stage (relative to the stage)."""
    return tuple(
        page.evaluate(
            """(id) => {
                const app = window.parleyBoard;
                const e = app.doc.get(id);
                const v = app.view.view;
                return [(e.x + e.w / 2 - v.x) * v.zoom, (e.y + e.h / 2 - v.y) * v.zoom];
            }""",
            element_id,
        )
    )


def export(page, kind: str, folder) -> bytes:
    """Export through the menu; the downloaded file's bytes."""
    closed = page.locator(".board-export:not([open]) summary")
    if closed.count():
        closed.click()
    with page.expect_download() as download:
        page.get_by_role("button", name=kind, exact=True).click()
    path = folder / download.value.suggested_filename
    download.value.save_as(path)
    return path.read_bytes()


def fixed_view(*pages) -> None:
    """The same view everywhere (zoom 1, origin at the top-left) so coordinates mean the same."""
    for page in pages:
        page.evaluate("() => window.parleyBoard.setView({x: 0, y: 0, zoom: 1})")


def test_two_people_draw_move_and_edit_the_same_element_at_once(start_server, chromium, make_user):
    ann, (ben,), room, board = people_and_board(make_user)
    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    ann_page, ben_page = open_page(browser, base_url, errors), open_page(browser, base_url, errors)
    open_board(ann_page, ann, room, board)
    open_board(ben_page, ben, room, board)
    fixed_view(ann_page, ben_page)

    # Both draw at the same time.
    rect = draw(ann_page, "rect", (100, 100), (260, 200))
    ellipse = draw(ben_page, "ellipse", (400, 120), (520, 220))
    expect(ben_page.locator(f'[data-id="{rect}"]')).to_be_attached()
    expect(ann_page.locator(f'[data-id="{ellipse}"]')).to_be_attached()
    converge(ann_page, ben_page)

    # Ann moves the rectangle while Ben types into it and colours it.
    x, y = screen_of(ben_page, rect)
    ben_page.mouse.dblclick(stage_box(ben_page)["x"] + x, stage_box(ben_page)["y"] + y)
    editor = ben_page.get_by_role("textbox", name="Edit text")
    expect(editor).to_be_visible()
    drag(ann_page, (180, 150), (230, 330), steps=12)
    editor.press_sequentially("shared")
    editor.press("Escape")
    ben_page.locator('[data-fill="#dbeafe"]').click()
    ann_page.locator('[data-stroke="#dc2626"]').click()  # Ann's rectangle is still selected

    final = {element["id"]: element for element in converge(ann_page, ben_page)}
    moved = final[rect]
    assert (moved["x"], moved["y"]) == (150, 280), moved  # Ann's move
    assert moved["text"] == "shared" and moved["fill"] == "#dbeafe"  # Ben's text and fill
    assert moved["stroke"] == "#dc2626"  # Ann's stroke
    assert final[ellipse]["type"] == "ellipse"
    for page in (ann_page, ben_page):
        expect(page.locator(f'[data-id="{rect}"] text')).to_have_text("shared")

    # Both see the other's cursor with their name, the other's selection outlined, their avatar.
    ben_page.mouse.move(stage_box(ben_page)["x"] + 600, stage_box(ben_page)["y"] + 300)
    expect(ann_page.locator(f'.peer-cursor[data-name="{ben.username}"]')).to_be_attached()
    expect(ann_page.locator(f'[data-peer-user="{ben.pk}"]')).to_be_visible()
    expect(ben_page.locator(".peer-selection")).to_have_count(1)  # Ann's rectangle is selected
    assert errors == []


def test_offline_edits_are_sent_on_reconnect_and_both_converge(start_server, chromium, make_user):
    ann, (ben,), room, board = people_and_board(make_user)
    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    ann_page, ben_page = open_page(browser, base_url, errors), open_page(browser, base_url, errors)
    ben_page.add_init_script("window.PARLEY_TEST_FAST_RECONNECT = true")
    open_board(ann_page, ann, room, board)
    open_board(ben_page, ben, room, board)
    fixed_view(ann_page, ben_page)
    shared = draw(ann_page, "rect", (100, 100), (200, 180))
    expect(ben_page.locator(f'[data-id="{shared}"]')).to_be_attached()
    converge(ann_page, ben_page)

    # Ben loses the network; he keeps drawing and colours the shared rectangle.
    ben_page.context.set_offline(True)
    expect(ben_page.locator("[data-board-conn]")).not_to_have_attribute("data-state", "connected")
    note = draw(ben_page, "sticky", (300, 100), (300, 100))  # a click: a default-sized sticky
    ben_page.keyboard.type("written offline")
    ben_page.keyboard.press("Escape")
    ben_page.locator("[data-stage]").click(position={"x": 700, "y": 450})  # deselect
    x, y = screen_of(ben_page, shared)
    ben_page.locator("[data-stage]").click(position={"x": x, "y": y})
    ben_page.locator('[data-fill="#dcfce7"]').click()
    expect(ben_page.locator("[data-board-conn]")).to_contain_text("waiting")
    # Meanwhile Ann moves the same rectangle.
    drag(ann_page, (150, 140), (150, 340))
    settled(ann_page)
    assert note not in {element["id"] for element in elements(ann_page)}

    # Back online: Ben's page rejoins with its state vector and resends; nothing lost or doubled.
    ben_page.context.set_offline(False)
    expect(ben_page.locator("[data-board-conn]")).to_have_attribute("data-state", "connected")
    final = {element["id"]: element for element in converge(ann_page, ben_page)}
    assert final[note]["text"] == "written offline"
    assert final[shared]["fill"] == "#dcfce7" and final[shared]["y"] == 300  # Ben's colour, Ann's move
    assert len(final) == 2
    from boards.models import BoardUpdate

    ids = in_thread(lambda: list(BoardUpdate.objects.filter(board=board).values_list("client_update_id", flat=True)))
    assert len(ids) == len(set(ids))
    assert errors == []


def test_a_viewer_watches_but_cannot_change_anything(start_server, chromium, make_user):
    ann, (vic,), room, board = people_and_board(make_user, roles=("viewer",))
    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    ann_page, vic_page = open_page(browser, base_url, errors), open_page(browser, base_url, errors)
    open_board(ann_page, ann, room, board)
    open_board(vic_page, vic, room, board)
    fixed_view(ann_page, vic_page)
    shape = draw(ann_page, "rect", (100, 100), (220, 200))
    expect(vic_page.locator(f'[data-id="{shape}"]')).to_be_attached()
    before = converge(ann_page, vic_page)

    expect(vic_page.locator(".board-readonly")).to_have_text("View only")
    expect(vic_page.locator('[data-tool="rect"]')).to_be_disabled()
    expect(vic_page.locator('[data-action="delete"]')).to_be_disabled()
    # Select the shape, try to drag it, delete it, type, duplicate, undo.
    drag(vic_page, (160, 150), (400, 400))
    expect(vic_page.locator(".board")).to_have_attribute("data-selection", shape)
    for key in ("Delete", "Control+d", "Control+z", "r"):
        vic_page.keyboard.press(key)
    vic_page.mouse.dblclick(stage_box(vic_page)["x"] + 160, stage_box(vic_page)["y"] + 150)
    expect(vic_page.get_by_role("textbox", name="Edit text")).to_be_hidden()
    assert elements(vic_page) == before
    assert vic_page.evaluate("() => window.parleyBoard.sync.outbox.size") == 0

    # A hand-made change (the page's code bypassed) is refused by the server, and shown.
    vic_page.evaluate(
        """() => {
            const app = window.parleyBoard;
            app.doc.editable = true;
            app.doc.add({type: "rect", x: 0, y: 0, w: 10, h: 10});
            app.doc.editable = false;
        }"""
    )
    expect(vic_page.locator("[data-banner]")).to_contain_text("Viewers can watch this board but not change it")
    settled(vic_page)
    assert elements(ann_page) == before
    from boards.models import BoardUpdate

    assert in_thread(lambda: BoardUpdate.objects.filter(board=board, user=vic).count()) == 0
    # Viewers' cursors are shown to the others too.
    vic_page.mouse.move(stage_box(vic_page)["x"] + 500, stage_box(vic_page)["y"] + 300)
    expect(ann_page.locator(f'.peer-cursor[data-name="{vic.username}"]')).to_be_attached()

    # Made a member while the page is open, Vic may draw at once.
    from rooms.services import membership_update

    in_thread(lambda: membership_update(actor=room.memberships.get(user=ann), user=vic, role="member"))
    expect(vic_page.locator('[data-tool="rect"]')).to_be_enabled()
    expect(vic_page.locator(".board-readonly")).to_be_hidden()
    drawn = draw(vic_page, "ellipse", (400, 300), (480, 360))
    expect(ann_page.locator(f'[data-id="{drawn}"]')).to_be_attached()
    assert errors == []


def test_undo_only_undoes_ones_own_change(start_server, chromium, make_user):
    ann, (ben,), room, board = people_and_board(make_user)
    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    ann_page, ben_page = open_page(browser, base_url, errors), open_page(browser, base_url, errors)
    open_board(ann_page, ann, room, board)
    open_board(ben_page, ben, room, board)
    fixed_view(ann_page, ben_page)
    mine = draw(ann_page, "rect", (100, 100), (200, 200))
    expect(ben_page.locator(f'[data-id="{mine}"]')).to_be_attached()
    theirs = draw(ben_page, "diamond", (300, 100), (400, 200))
    expect(ann_page.locator(f'[data-id="{theirs}"]')).to_be_attached()
    # Ben recolours Ann's rectangle: Ann's undo must not take that back either.
    ben_page.locator("[data-stage]").click(position={"x": 150, "y": 150})
    ben_page.locator('[data-stroke="#2563eb"]').click()
    expect(ann_page.locator(f'[data-id="{mine}"] rect')).to_have_attribute("stroke", "#2563eb")
    converge(ann_page, ben_page)

    ann_page.locator("[data-stage]").focus()
    ann_page.keyboard.press("Control+z")  # undoes Ann's rectangle, her only change
    expect(ann_page.locator(f'[data-id="{mine}"]')).to_have_count(0)
    expect(ben_page.locator(f'[data-id="{mine}"]')).to_have_count(0)
    final = converge(ann_page, ben_page)
    assert [element["id"] for element in final] == [theirs]
    ann_page.keyboard.press("Control+z")  # nothing more of Ann's to undo
    ann_page.keyboard.press("Control+Shift+z")  # redo brings her rectangle back
    expect(ben_page.locator(f'[data-id="{mine}"]')).to_be_attached()
    final = {element["id"]: element for element in converge(ann_page, ben_page)}
    assert set(final) == {mine, theirs}
    assert errors == []


def test_comments_replay_and_export(start_server, chromium, make_user, tmp_path):
    ann, (ben,), room, board = people_and_board(make_user)
    type(ben).objects.filter(pk=ben.pk).update(display_name="Ben Ode")  # comments show display names
    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    ann_page, ben_page = open_page(browser, base_url, errors), open_page(browser, base_url, errors)
    open_board(ann_page, ann, room, board)
    open_board(ben_page, ben, room, board)
    fixed_view(ann_page, ben_page)
    first = draw(ann_page, "ellipse", (100, 100), (220, 180))
    settled(ann_page)
    second = draw(ann_page, "rect", (300, 100), (420, 200))
    settled(ann_page)
    expect(ben_page.locator(f'[data-id="{second}"]')).to_be_attached()

    # Ben comments on the rectangle; Ann sees the badge and the thread, and answers.
    ben_page.locator("[data-stage]").click(position={"x": 360, "y": 150})
    ben_page.get_by_role("button", name="Comments").click()
    ben_page.get_by_role("textbox", name="New comment").fill("Make this bigger?")
    ben_page.get_by_role("button", name="Comment", exact=True).click()
    badge = ann_page.locator(f'[data-comment-element="{second}"]')
    expect(badge).to_have_text("1")
    badge.dispatch_event("click")
    thread = ann_page.locator(f'[data-element="{second}"]')
    expect(thread).to_contain_text("Make this bigger?")
    expect(thread.locator(".comment-meta strong").first).to_have_text("Ben Ode")
    thread.get_by_role("textbox", name="Reply").fill("Sure")
    thread.get_by_role("button", name="Reply").click()
    expect(ben_page.locator(f'[data-element="{second}"]')).to_contain_text("Sure")
    expect(ben_page.locator(f'[data-comment-element="{second}"]')).to_have_text("2")
    ben_page.locator(f'[data-element="{second}"]').get_by_role("button", name="Resolve").click()
    expect(badge).to_have_count(0)

    # Replay: the slider goes back to the first change, where only the ellipse exists.
    ann_page.get_by_role("button", name="History").click()
    slider = ann_page.locator("[data-replay-slider]")
    expect(slider).to_be_visible()
    replay = ann_page.locator("[data-replay]")
    expect(replay).to_have_attribute("data-count", "2")
    slider.fill("1")
    expect(replay).to_have_attribute("data-sequence", "1")
    expect(replay).to_have_attribute("data-count", "1")
    expect(ann_page.locator("[data-replay-info]")).to_contain_text(ann.username)
    expect(ann_page.locator(".board-elements > g")).to_have_count(1)
    expect(ann_page.locator(f'.board-elements [data-id="{first}"]')).to_be_attached()
    # Read-only while scrubbing: dragging only pans, keys change nothing.
    drag(ann_page, (500, 300), (600, 400))
    ann_page.keyboard.press("Delete")
    assert len(elements(ann_page)) == 2
    ann_page.get_by_role("button", name="Back to live").click()
    expect(ann_page.locator(".board-elements > g")).to_have_count(2)
    fixed_view(ann_page)

    # Export: SVG and PNG of the whole board and of the selection, and the JSON.
    files = {kind: export(ann_page, kind, tmp_path) for kind in ("SVG", "PNG", "JSON")}
    assert files["PNG"].startswith(b"\x89PNG\r\n\x1a\n") and len(files["PNG"]) > 1000
    svg = files["SVG"].decode()
    assert svg.startswith("<svg") and "<ellipse" in svg and "<rect" in svg
    exported = json.loads(files["JSON"])
    assert {element["id"] for element in exported["elements"]} == {first, second}
    # The selection only (the rectangle).
    ann_page.locator("[data-stage]").click(position={"x": 360, "y": 150})
    ann_page.locator("summary", has_text="Export").click()
    ann_page.get_by_label("Selection only").check()
    selection_svg = export(ann_page, "SVG", tmp_path).decode()
    assert "<rect" in selection_svg and "<ellipse" not in selection_svg
    png = export(ann_page, "PNG", tmp_path)
    assert png.startswith(b"\x89PNG") and len(png) > 500 and png != files["PNG"]
    assert errors == []


def test_boards_in_the_room_page_and_the_split_view(start_server, chromium, make_user):
    from tests.test_browser import send

    ann, (ben,), room, board = people_and_board(make_user)
    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    ann_page, ben_page = open_page(browser, base_url, errors), open_page(browser, base_url, errors)
    for page, user in ((ann_page, ann), (ben_page, ben)):
        sign_in(page, user.username)
        page.goto(f"/rooms/{room.pk}/")
        expect(page.locator("#conn-badge")).to_have_text("Connected")
        expect(page.locator("#board-list")).to_contain_text("Sketches")

    # Ann creates a board: it opens next to the chat, and Ben's list shows it live.
    ann_page.get_by_label("New board title").fill("Roadmap")
    ann_page.locator("#board-create").get_by_role("button", name="Create").click()
    expect(ann_page.locator("#board-split [data-board-title]")).to_have_text("Roadmap")
    expect(ann_page.locator("#board-split [data-board-conn]")).to_have_attribute("data-state", "connected")
    expect(ben_page.locator("#board-list")).to_contain_text("Roadmap")
    ben_page.locator(".board-row", has_text="Roadmap").get_by_role("button", name="Open here").click()
    expect(ben_page.locator("#board-split [data-board-conn]")).to_have_attribute("data-state", "connected")

    # Drawing in the split view reaches the other; the chat keeps working beside it.
    fixed_view(ann_page, ben_page)
    shape = draw(ann_page, "rect", (60, 60), (160, 140))
    expect(ben_page.locator(f'#board-split [data-id="{shape}"]')).to_be_attached()
    send(ben_page, "Looks good")
    expect(ann_page.locator("[data-sequence]", has_text="Looks good")).to_be_visible()
    # The board's own page has the same document.
    ben_page.locator(".board-row", has_text="Roadmap").get_by_role("link").click()
    expect(ben_page.locator("[data-board-conn]")).to_have_attribute("data-state", "connected")
    expect(ben_page.locator(f'[data-id="{shape}"]')).to_be_attached()
    converge(ann_page, ben_page)
    assert errors == []


def test_the_tools_on_one_board(start_server, chromium, make_user):
    """Connectors follow their shapes, resize, shift-click and box selection, duplicate, z-order,
    delete, pen, text, keyboard shortcuts, zoom and fit; and follow mode from a second page."""
    ann, (ben,), room, board = people_and_board(make_user)
    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    page, ben_page = open_page(browser, base_url, errors), open_page(browser, base_url, errors)
    open_board(page, ann, room, board)
    open_board(ben_page, ben, room, board)
    fixed_view(page, ben_page)
    left = draw(page, "rect", (100, 100), (200, 200))
    right = draw(page, "diamond", (400, 100), (500, 200))
    arrow = draw(page, "arrow", (150, 150), (450, 150))
    connector = {element["id"]: element for element in elements(page)}[arrow]
    assert (connector["from"], connector["to"]) == (left, right)
    line = page.locator(f'[data-id="{arrow}"] line')
    expect(line).to_have_attribute("x1", "200")
    expect(line).to_have_attribute("x2", "400")
    # Moving a shape drags the arrow's end along (here and on the other page).
    drag(page, (450, 150), (450, 350))
    expect(line).not_to_have_attribute("y2", "150")
    expect(ben_page.locator(f'[data-id="{arrow}"] line')).to_have_attribute("y2", line.get_attribute("y2"))

    # Resize the rectangle by its bottom-right handle.
    page.locator("[data-stage]").click(position={"x": 150, "y": 150})
    handle = page.locator('[data-handle="se"]')
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 104, box["y"] + 54, steps=5)
    page.mouse.up()
    resized = {element["id"]: element for element in elements(page)}[left]
    assert abs(resized["w"] - 200) <= 1 and abs(resized["h"] - 150) <= 1, resized

    # Shift-click adds to the selection; a box selects what it encloses.
    page.locator("[data-stage]").click(position={"x": 150, "y": 150})
    page.locator("[data-stage]").click(position={"x": 450, "y": 350}, modifiers=["Shift"])
    expect(page.locator(".board")).to_have_attribute("data-selection", f"{left},{right}")
    drag(page, (50, 50), (700, 500))
    assert set(page.locator(".board").get_attribute("data-selection").split(",")) == {left, right, arrow}

    # Duplicate (Ctrl+D) copies all three, the copied arrow joining the copies; Delete removes them.
    page.keyboard.press("Control+d")
    page.wait_for_function("() => window.parleyBoard.doc.size === 6")
    copies = [element for element in elements(page) if element["id"] not in {left, right, arrow}]
    copied_arrow = next(element for element in copies if element["type"] == "arrow")
    assert {copied_arrow["from"], copied_arrow["to"]} <= {element["id"] for element in copies}
    page.keyboard.press("Delete")
    page.wait_for_function("() => window.parleyBoard.doc.size === 3")

    # Z-order: the rectangle to the front, then to the back.
    page.locator("[data-stage]").click(position={"x": 150, "y": 150})
    page.keyboard.press("Control+]")
    assert elements(page)[-1]["id"] == left
    page.get_by_role("button", name="Send to back").click()
    assert elements(page)[0]["id"] == left

    # Pen (P) and text (T, typed in place).
    page.keyboard.press("p")
    drag(page, (600, 400), (700, 450), steps=10)
    pen = next(element for element in elements(page) if element["type"] == "pen")
    assert len(pen["points"]) >= 6
    page.keyboard.press("t")
    page.locator("[data-stage]").click(position={"x": 100, "y": 450})
    page.keyboard.type("Hello board")
    page.keyboard.press("Escape")
    text = next(element for element in elements(page) if element["type"] == "text")
    assert text["text"] == "Hello board"
    expect(ben_page.locator(f'[data-id="{text["id"]}"] text')).to_have_text("Hello board")

    # Follow mode: Ben follows Ann; Ann zooms in and Ben's view goes with her.
    ben_page.locator(f'button[data-peer-user="{ann.pk}"]').click()
    expect(ben_page.locator("[data-following]")).to_have_text(f"Following {ann.username}")
    page.locator("[data-stage]").focus()
    page.keyboard.press("+")
    expect(page.locator("[data-zoom]")).to_have_text("125%")
    expect(ben_page.locator("[data-zoom]")).to_have_text("125%")
    page.keyboard.press("Shift+!")  # fit to content
    expect(page.locator("[data-zoom]")).not_to_have_text("125%")
    expect(ben_page.locator("[data-zoom]")).to_have_text(page.locator("[data-zoom]").inner_text())
    converge(page, ben_page)
    assert errors == []


def touch_page(browser, base_url: str, errors: list[str]):
    """open_page, in a context with a touch screen (CDP touches then reach the page as pointers)."""
    from tests.test_browser import REPORT_CSP_VIOLATIONS, VIEWPORT

    context = browser.new_context(base_url=base_url, viewport=VIEWPORT, has_touch=True)
    context.set_default_timeout(10_000)
    context.expose_binding(
        "reportCspViolation", lambda source, text: errors.append(f"{source['page'].url}: CSP violation: {text}")
    )
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
    return page


def view_of(page) -> dict:
    return page.evaluate("() => ({...window.parleyBoard.view.view})")


def test_rotate_edit_a_comment_pinch_pan_rename_delete_and_replay_checkpoints(
    start_server, chromium, make_user, settings, monkeypatch
):
    """Rotation (handle, stored, drawn on the other side, in the JSON and the export); editing
    one's comment; pinch (ctrl+wheel and two touches) and space-drag pan; renaming and deleting
    the board with confirmation, seen live by the other; replay below the pruned log."""
    import datetime as dt

    from django.utils import timezone

    from boards import compaction
    from boards.services import board_create
    from tests.test_boards_compaction import edit_history

    ann, (ben,), room, board = people_and_board(make_user)
    # A second board whose log is compacted and pruned: checkpoints at 10 and 20, the log after 20.
    monkeypatch.setattr(compaction, "CHECKPOINT_BYTES_RATIO", 0)
    settings.BOARD_CHECKPOINT_EVERY = 10
    settings.BOARD_KEEP_UPDATES = 5
    archive = board_create(user=ann, room_id=room.pk, title="Archive")
    renderings = edit_history(archive, ann, 27)
    compaction.compact_board(archive.pk, now=timezone.now() + dt.timedelta(days=31))
    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    ann_page, ben_page = touch_page(browser, base_url, errors), open_page(browser, base_url, errors)
    open_board(ann_page, ann, room, board)
    open_board(ben_page, ben, room, board)
    fixed_view(ann_page, ben_page)

    # Rotation: the round handle above the selected rectangle, turned a quarter (Shift: 15° steps).
    rect = draw(ann_page, "rect", (100, 100), (260, 200))  # centre (180, 150); selected
    handle = ann_page.locator('[data-handle="rotate"]')
    expect(handle).to_be_attached()
    stage = stage_box(ann_page)
    ann_page.mouse.move(stage["x"] + 180, stage["y"] + 76)
    ann_page.mouse.down()
    ann_page.keyboard.down("Shift")
    ann_page.mouse.move(stage["x"] + 250, stage["y"] + 140, steps=4)
    ann_page.mouse.move(stage["x"] + 254, stage["y"] + 150, steps=2)
    ann_page.mouse.up()
    ann_page.keyboard.up("Shift")
    settled(ann_page)
    assert {e["id"]: e for e in elements(ann_page)}[rect]["angle"] == 90
    expect(ben_page.locator(f'[data-id="{rect}"]')).to_have_attribute("transform", "rotate(90 180 150)")
    # Hit where it stands now (upright), not where it lay.
    ann_page.locator("[data-stage]").click(position={"x": 600, "y": 500})
    ann_page.locator("[data-stage]").click(position={"x": 180, "y": 80})
    expect(ann_page.locator(".board")).to_have_attribute("data-selection", rect)
    server = ann_page.evaluate(
        """async (id) => {
            const get = async (path) => (await fetch(`/api/v1/boards/${id}/${path}`)).json();
            return [await get(""), await get("export/")];
        }""",
        str(board.pk),
    )
    for rendering in server:
        assert [(e["id"], e.get("angle")) for e in rendering["elements"]] == [(rect, 90)]

    # Ann comments, then edits her comment's text; Ben sees the new text, and no Edit for him.
    ann_page.get_by_role("button", name="Comments").click()
    ann_page.get_by_role("textbox", name="New comment").fill("Frist draft")
    ann_page.get_by_role("button", name="Comment", exact=True).click()
    expect(ben_page.locator("[data-comment-list]")).to_contain_text("Frist draft")
    ann_page.locator("[data-comment-list]").get_by_role("button", name="Edit").click()
    ann_page.get_by_role("textbox", name="Edit comment").fill("First draft")
    ann_page.get_by_role("button", name="Save").click()
    expect(ann_page.locator("[data-comment-list] .comment-body")).to_have_text("First draft")
    expect(ben_page.locator("[data-comment-list] .comment-body")).to_have_text("First draft")
    expect(ben_page.locator('[data-comment-action="edit"]')).to_have_count(0)
    ann_page.get_by_role("button", name="Comments").click()

    # Pinch on a trackpad (a wheel with ctrlKey): zooms about the pointer.
    ann_page.locator("[data-stage]").focus()
    ann_page.mouse.move(stage["x"] + 300, stage["y"] + 200)
    ann_page.keyboard.down("Control")
    ann_page.mouse.wheel(0, -50)
    ann_page.keyboard.up("Control")
    expect(ann_page.locator("[data-zoom]")).to_have_text("165%")
    view = view_of(ann_page)
    # (the pointer's position is in whole pixels: within one of the point it was on)
    assert abs(view["x"] + 300 / view["zoom"] - 300) < 1 and abs(view["y"] + 200 / view["zoom"] - 200) < 1
    # Pinch with two fingers: spreading them from 200 to 400 px apart doubles the zoom.
    cdp = ann_page.context.new_cdp_session(ann_page)
    x0, y0 = stage["x"], stage["y"]

    def touch(kind: str, points) -> None:
        cdp.send(
            "Input.dispatchTouchEvent",
            {"type": kind, "touchPoints": [{"x": x0 + x, "y": y0 + y, "id": i} for i, (x, y) in enumerate(points)]},
        )

    touch("touchStart", [(500, 400), (700, 400)])
    touch("touchMove", [(450, 400), (750, 400)])
    touch("touchMove", [(400, 400), (800, 400)])
    ann_page.wait_for_function("(z) => Math.abs(window.parleyBoard.view.view.zoom - 2 * z) < 0.01", arg=view["zoom"])
    touch("touchEnd", [])
    # Space + drag pans (and moves nothing), at any tool.
    before, shapes = view_of(ann_page), elements(ann_page)
    ann_page.keyboard.down(" ")
    drag(ann_page, (600, 500), (400, 300))
    ann_page.keyboard.up(" ")
    after = view_of(ann_page)
    assert abs((after["x"] - before["x"]) * after["zoom"] - 200) < 0.5, (before, after)
    assert abs((after["y"] - before["y"]) * after["zoom"] - 200) < 0.5, (before, after)
    assert after["zoom"] == before["zoom"] and elements(ann_page) == shapes

    # Rename and delete: for the board's creator (Ann), not for Ben (a member who did not make it).
    expect(ben_page.locator("[data-board-manage]")).to_be_hidden()
    ann_page.get_by_role("button", name="Rename").click()
    ann_page.get_by_role("textbox", name="Board title").fill("Sketches v2")
    ann_page.get_by_role("button", name="Save").click()
    expect(ann_page.locator("[data-board-title]")).to_have_text("Sketches v2")
    expect(ben_page.locator("[data-board-title]")).to_have_text("Sketches v2")
    ann_page.get_by_role("button", name="Delete board").click()
    confirm = ann_page.get_by_role("alertdialog", name="Delete the board")
    expect(confirm).to_be_visible()
    confirm.get_by_role("button", name="Cancel").click()  # nothing happens
    expect(confirm).to_be_hidden()
    ann_page.get_by_role("button", name="Delete board").click()
    confirm.get_by_role("button", name="Delete for everyone").click()
    for page in (ann_page, ben_page):
        expect(page.locator(".board")).to_have_attribute("data-deleted", "true")
        expect(page.locator("[data-banner]")).to_contain_text("deleted")
    expect(ben_page.locator('[data-tool="rect"]')).to_be_disabled()
    from boards.models import Board

    assert not in_thread(lambda: Board.objects.filter(pk=board.pk).exists())

    # Replay below the prune point steps through the checkpoints (10, 20), then every change.
    ann_page.goto(f"/rooms/{room.pk}/boards/{archive.pk}/")
    expect(ann_page.locator("[data-board-conn]")).to_have_attribute("data-state", "connected")
    ann_page.get_by_role("button", name="History").click()
    replay = ann_page.locator("[data-replay]")
    expect(replay).to_have_attribute("data-sequence", "27")
    expect(replay).to_have_attribute("data-checkpoints", "2")
    expect(ann_page.locator("[data-replay-note]")).to_contain_text("Up to #20 the log was compacted")
    slider = ann_page.locator("[data-replay-slider]")
    assert slider.get_attribute("max") == "9"  # empty, 2 checkpoints, 21..27
    for stop, kind, sequence in ((1, "checkpoint", 10), (2, "checkpoint", 20), (3, "update", 21)):
        slider.fill(str(stop))
        expect(replay).to_have_attribute("data-sequence", str(sequence))
        expect(replay).to_have_attribute("data-kind", kind)
        expect(replay).to_have_attribute("data-count", str(len(renderings[sequence]["elements"])))
    slider.fill("1")
    expect(ann_page.locator("[data-replay-info]")).to_contain_text("Checkpoint #10")
    assert errors == []


def test_a_board_over_sse_then_long_polling_when_websocket_is_blocked(start_server, chromium, make_user):
    """Ben's browser cannot use a WebSocket (a route swallows it: it opens and nothing ever comes
    through); Ann's can. Ben's board page falls back to Server-Sent Events (its stream follows the
    board; so does his room page's, for the board open next to the chat), then, with the stream
    refused too, to long-polling; his updates and awareness go over REST, the two draw on and move
    the same element at once, see each other's cursors (not their own) and converge. Then Ann
    deletes the board: Ben is told and taken back to the room."""
    ann, (ben,), room, board = people_and_board(make_user)
    base_url = start_server()
    browser = chromium()
    errors: list[str] = []
    ann_page, ben_page = open_page(browser, base_url, errors), open_page(browser, base_url, errors)
    ben_page.add_init_script(
        "window.PARLEY_TEST_FAST_RECONNECT = true;"
        " window.PARLEY_TEST_TIMINGS = {websocketReadyTimeoutMs: 300, boardGoneRedirectMs: 300};"
    )
    ben_page.route_web_socket(re.compile(r"/ws/$"), lambda ws: None)  # connected nowhere: never a frame
    open_board(ann_page, ann, room, board)
    sign_in(ben_page, ben.username)
    ben_page.goto(f"/rooms/{room.pk}/boards/{board.pk}/")
    badge = ben_page.locator("[data-board-conn]")
    expect(badge).to_have_text("Connected (SSE)", timeout=20_000)
    expect(badge).to_have_attribute("data-transport", "sse")
    fixed_view(ann_page, ben_page)
    writes: list[str] = []
    ben_page.on("request", lambda request: request.method == "POST" and writes.append(request.url))

    # Both draw; Ben moves Ann's ellipse while she recolours it.
    rect = draw(ben_page, "rect", (100, 100), (220, 180))
    expect(ann_page.locator(f'[data-id="{rect}"]')).to_be_attached()  # (before she draws: see draw())
    ellipse = draw(ann_page, "ellipse", (400, 120), (520, 220))
    expect(ben_page.locator(f'[data-id="{ellipse}"]')).to_be_attached()
    drag(ben_page, (460, 170), (460, 370))
    ann_page.locator('[data-stroke="#dc2626"]').click()  # her ellipse is still selected
    final = {element["id"]: element for element in converge(ann_page, ben_page)}
    assert (final[ellipse]["y"], final[ellipse]["stroke"]) == (320, "#dc2626"), final[ellipse]
    assert final[rect]["type"] == "rect"
    assert any(url.endswith(f"/boards/{board.pk}/updates/") for url in writes), writes

    # Cursors both ways: Ben's over REST awareness, Ann's over his stream; never his own.
    ben_page.mouse.move(stage_box(ben_page)["x"] + 600, stage_box(ben_page)["y"] + 300)
    expect(ann_page.locator(f'.peer-cursor[data-name="{ben.username}"]')).to_be_attached()
    ann_page.mouse.move(stage_box(ann_page)["x"] + 650, stage_box(ann_page)["y"] + 350)
    expect(ben_page.locator(f'.peer-cursor[data-name="{ann.username}"]')).to_be_attached()
    assert any(url.endswith(f"/boards/{board.pk}/awareness/") for url in writes), writes
    expect(ben_page.locator(f'.peer-cursor[data-name="{ben.username}"]')).to_have_count(0)

    # The room page's stream follows the board Ben opens next to the chat.
    ben_page.goto(f"/rooms/{room.pk}/")
    expect(ben_page.locator("#conn-badge")).to_have_text("Connected (SSE)")
    ben_page.locator(".board-row", has_text="Sketches").get_by_role("button", name="Open here").click()
    split = ben_page.locator("#board-split")
    expect(split.locator("[data-board-conn]")).to_have_text("Connected (SSE)")
    expect(split.locator(f'[data-id="{ellipse}"]')).to_be_attached()
    fixed_view(ben_page)
    beside = draw(ben_page, "sticky", (300, 250), (300, 250))  # a click: a default-sized sticky
    expect(ann_page.locator(f'[data-id="{beside}"]')).to_be_attached()
    converge(ann_page, ben_page)
    # Ann renames the board: Ben's list and the board beside his chat follow at once.
    ann_page.get_by_role("button", name="Rename").click()
    ann_page.get_by_role("textbox", name="Board title").fill("Sketches v2")
    ann_page.get_by_role("button", name="Save").click()
    expect(ben_page.locator("#board-list")).to_contain_text("Sketches v2")
    expect(split.locator("[data-board-title]")).to_have_text("Sketches v2")

    # The event stream is refused too: the board's page comes over long-polling.
    ben_page.context.route(re.compile(r"/api/v1/events/"), lambda route: route.abort())
    ben_page.goto(f"/rooms/{room.pk}/boards/{board.pk}/")
    expect(badge).to_have_text("Connected (long-polling)", timeout=20_000)
    expect(badge).to_have_attribute("data-transport", "poll")
    fixed_view(ben_page)
    diamond = draw(ben_page, "diamond", (100, 300), (200, 380))
    expect(ann_page.locator(f'[data-id="{diamond}"]')).to_be_attached()
    square = draw(ann_page, "rect", (600, 100), (700, 160))
    expect(ben_page.locator(f'[data-id="{square}"]')).to_be_attached()
    final = {element["id"]: element for element in converge(ann_page, ben_page)}
    assert set(final) == {rect, ellipse, beside, diamond, square}
    from boards.models import BoardUpdate

    ids = in_thread(lambda: list(BoardUpdate.objects.filter(board=board).values_list("client_update_id", flat=True)))
    assert len(ids) == len(set(ids))  # nothing applied twice

    # Ann deletes the board: Ben's page (polling) says so and goes back to the room.
    ann_page.get_by_role("button", name="Delete board").click()
    ann_page.get_by_role("alertdialog", name="Delete the board").get_by_role(
        "button", name="Delete for everyone"
    ).click()
    expect(ben_page).to_have_url(re.compile(rf"/rooms/{room.pk}/$"), timeout=15_000)
    expect(ben_page.locator("#board-list")).to_have_text("No boards yet.")  # the room's list, read again
    assert errors == []
