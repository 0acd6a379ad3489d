"""The simulator's web UI end to end (static/js/simulator/, issue 14): headless Chromium against a
real server process and a real Celery worker (tests/test_simulator_worker.py's fixture, on a queue of
its own that the server is told about), reusing tests/test_board_browser.py's helpers.

One test builds a design from the palette (drag, connect with the arrow tool, set parameters in the
inspector), runs it and sees its progress and the bottleneck highlighted; the other starts a board
from a template, streams a run to three people (a viewer, who gets no run controls), injects a fault
and cancels it from another browser: everyone sees it cancelled. Waits are on DOM conditions only."""

import re

import pytest
from playwright.sync_api import expect

from tests import test_browser
from tests.test_board_browser import draw, elements, fixed_view, open_board, people_and_board, settled, stage_box
from tests.test_browser import open_page, sign_in
from tests.test_simulator_worker import worker  # noqa: F401  (a fixture: a Celery worker on its own queue)

pytestmark = pytest.mark.browser

chromium = test_browser.chromium

RUN_BOUND = 60_000  # ms: the worker starting and a short run finishing (a bound, not a measurement)


def open_simulator(page) -> None:
    if page.locator("[data-sim-panel]").is_hidden():  # a board with components opens with it
        page.locator("[data-sim-toggle]").click()
    expect(page.locator("[data-sim-panel]")).to_be_visible()


def drag_from_palette(page, kind: str, to) -> str:
    """Drag a palette kind onto the stage at `to` (relative to the stage); the new component's id."""
    before = {element["id"] for element in elements(page)}
    source = page.locator(f'[data-sim-kind="{kind}"]').bounding_box()
    stage = stage_box(page)
    page.mouse.move(source["x"] + source["width"] / 2, source["y"] + source["height"] / 2)
    page.mouse.down()
    page.mouse.move(stage["x"] + to[0], stage["y"] + to[1], steps=10)
    page.mouse.up()
    page.wait_for_function("(n) => window.parleyBoard.doc.size > n", arg=len(before))
    (new,) = [element for element in elements(page) if element["id"] not in before]
    assert new["type"] == "component" and new["kind"] == kind, new
    assert abs(new["x"] + new["w"] / 2 - to[0]) <= 1 and abs(new["y"] + new["h"] / 2 - to[1]) <= 1, new
    return new["id"]


def test_build_a_design_from_the_palette_run_it_and_see_the_bottleneck(
    start_server,
    chromium,
    make_user,
    worker,  # noqa: F811
    settings,
):
    ann, _, room, board = people_and_board(make_user, roles=())
    base_url = start_server(SIM_CELERY_QUEUE=settings.SIM_CELERY_QUEUE)
    browser = chromium()
    errors: list[str] = []
    page = open_page(browser, base_url, errors)
    open_board(page, ann, room, board)
    fixed_view(page)
    open_simulator(page)

    # Three components dragged from the palette, connected with the arrow tool.
    users = drag_from_palette(page, "client", (110, 150))
    api = drag_from_palette(page, "service", (380, 150))
    db = drag_from_palette(page, "database", (650, 150))
    expect(page.locator('[data-sim-icon="service"]')).to_have_count(1)
    page.locator("[data-stage]").focus()
    first = draw(page, "arrow", (140, 150), (360, 150))
    second = draw(page, "arrow", (410, 150), (630, 150))
    connectors = {element["id"]: element for element in elements(page) if element["type"] == "arrow"}
    assert (connectors[first]["from"], connectors[first]["to"]) == (users, api)
    assert (connectors[second]["from"], connectors[second]["to"]) == (api, db)

    # The service gets one instance serving one request at a time (50 rps for the clients' 100).
    page.locator("[data-stage]").click(position={"x": 380, "y": 150})
    expect(page.locator("[data-sim-inspected]")).to_have_attribute("data-sim-inspected", api)
    for name in ("instances", "concurrency"):
        page.locator(f'[data-sim-param="{name}"]').fill("1")
        page.locator(f'[data-sim-param="{name}"]').press("Tab")
    page.wait_for_function(
        "(id) => { const p = window.parleyBoard.doc.get(id).params; return p.instances === 1 && p.concurrency === 1; }",
        arg=api,
    )
    assert {element["id"]: element for element in elements(page)}[api]["params"]["service_ms"] == 20  # the default
    # A parameter edit is an edit like any other: undone and redone with the board's keys.
    page.locator("[data-stage]").focus()
    page.keyboard.press("Control+z")
    expect(page.locator('[data-sim-param="concurrency"]')).to_have_value("8")
    page.keyboard.press("Control+Shift+z")
    expect(page.locator('[data-sim-param="concurrency"]')).to_have_value("1")
    settled(page)
    expect(page.locator("[data-sim-problems]")).to_have_attribute("data-valid", "true")

    # Run it: 20 simulated seconds at 5x. Progress colours the components while it runs.
    form = page.locator("[data-sim-start]")
    form.locator('[name="duration_s"]').fill("20")
    form.locator('[name="seed"]').fill("7")
    form.locator('[name="speed"]').select_option("5")
    form.get_by_role("button", name="Run").click()
    chip = page.locator("[data-sim-status]")
    expect(chip).to_have_attribute("data-sim-status", "running", timeout=RUN_BOUND)
    expect(page.locator(f'[data-sim-heat="{api}"]')).to_be_attached()
    expect(page.locator(f'[data-sim-label="{api}"]')).to_contain_text("p99")
    expect(page.locator(f'[data-sim-flow="{first}"]')).to_have_class(re.compile(r"sim-flow-\d"))
    expect(page.locator('[data-sim-chart="latency"] path')).to_have_count(1)

    # At the end the engine names the service as the bottleneck; the canvas highlights it.
    expect(chip).to_have_attribute("data-sim-status", "done", timeout=RUN_BOUND)
    expect(page.locator(f'[data-sim-bottleneck="{api}"]')).to_be_attached()
    # (the engine names it by id; the panel by its label on the canvas)
    expect(page.locator("[data-sim-bottleneck-text]")).to_contain_text("the application service 'Application service'")
    expect(page.locator(f'[data-sim-heat="{api}"]')).to_have_class(re.compile(r"sim-util-(high|over)"))
    expect(page.locator('[data-sim-chart="utilisation"] path.sim-series')).not_to_have_count(0)
    # The run is listed, with its exports; nothing of it went into the document.
    row = page.locator("[data-sim-run-id]")
    expect(row).to_have_count(1)
    csv = re.compile(r"/export/csv/\?table=components$")
    expect(row.locator('[data-sim-export="csv"]')).to_have_attribute("href", csv)
    document_keys = {"id", "type", "kind", "params", "x", "y", "w", "h", "text", "fontSize", "stroke", "fill", "z"}
    document_keys |= {"createdBy", "from", "to", "points"}
    assert all(set(element) <= document_keys for element in elements(page))

    # A second run, as fast as the engine goes, compared with the first side by side.
    form.locator('[name="seed"]').fill("8")
    form.locator('[name="speed"]').select_option("")
    form.get_by_role("button", name="Run").click()
    expect(page.locator('[data-sim-run-id][data-status="done"]')).to_have_count(2, timeout=RUN_BOUND)
    for checkbox in page.locator("input[data-sim-compare]").all():
        checkbox.check()
    page.locator('[data-sim-action="compare"]').click()
    expect(page.locator("[data-sim-compare-table]")).to_contain_text("p99")

    # A dangling connector is a problem shown at it on the canvas.
    page.locator("[data-stage]").focus()
    dangling = draw(page, "arrow", (650, 150), (650, 400))
    expect(page.locator(f'[data-sim-problem="{dangling}"]')).to_be_attached(timeout=10_000)
    expect(page.locator("[data-sim-problems]")).to_have_attribute("data-valid", "false")
    form.get_by_role("button", name="Run").click()
    expect(page.locator("[data-sim-message]")).to_contain_text("The design cannot run")
    assert errors == []


def test_a_run_streamed_to_three_people_takes_a_fault_and_is_cancelled_by_another(
    start_server,
    chromium,
    make_user,
    worker,  # noqa: F811
    settings,
):
    ann, (ben, vic), room, _ = people_and_board(make_user, roles=("member", "viewer"))
    base_url = start_server(SIM_CELERY_QUEUE=settings.SIM_CELERY_QUEUE)
    browser = chromium()
    errors: list[str] = []
    pages = {name: open_page(browser, base_url, errors) for name in ("ann", "ben", "vic")}

    # Ben starts a board from the template gallery on the room page.
    ben_page = pages["ben"]
    sign_in(ben_page, ben.username)
    ben_page.goto(f"/rooms/{room.pk}/")
    ben_page.locator("[data-sim-template]").select_option("url-shortener")
    ben_page.get_by_role("button", name="New board from template").click()
    expect(ben_page.locator(".board-split")).to_have_attribute("data-live", "true")
    board_id = ben_page.evaluate("() => window.parleyBoard.board.id")
    url = f"/rooms/{room.pk}/boards/{board_id}/"
    ben_page.goto(url)
    sign_in(pages["ann"], ann.username)
    pages["ann"].goto(url)
    for page in (ben_page, pages["ann"]):
        expect(page.locator("[data-board-conn]")).to_have_attribute("data-state", "connected")
        expect(page.locator("[data-sim-panel]")).to_be_visible()  # the board holds a design

    # Ben runs it in real time (ten minutes: it will be cancelled long before).
    form = ben_page.locator("[data-sim-start]")
    form.locator('[name="duration_s"]').fill("600")
    form.locator('[name="speed"]').select_option("1")
    form.get_by_role("button", name="Run").click()
    expect(ben_page.locator("[data-sim-status]")).to_have_attribute("data-sim-status", "running", timeout=RUN_BOUND)
    # Vic, a viewer, comes in while it runs: its state comes from REST, its progress from the socket.
    sign_in(pages["vic"], vic.username)
    pages["vic"].goto(url)
    expect(pages["vic"].locator("[data-board-conn]")).to_have_attribute("data-state", "connected")
    expect(pages["vic"].locator("[data-sim-status]")).to_have_attribute("data-sim-status", "running")
    open_simulator(pages["vic"])
    expect(pages["vic"].locator("[data-sim-start]")).to_be_hidden()
    expect(pages["vic"].locator('[data-sim-kind="service"]')).to_be_hidden()
    for page in pages.values():
        expect(page.locator("[data-sim-status]")).to_have_attribute("data-sim-status", "running", timeout=RUN_BOUND)
        expect(page.locator('[data-sim-heat="api"]')).to_be_attached()
        expect(page.locator('[data-sim-flow="lb->api"]')).to_be_attached()
    expect(pages["vic"].locator('[data-sim-action="cancel"]')).to_be_hidden()
    expect(pages["vic"].locator("[data-sim-fault]")).to_be_hidden()

    # Ben kills two of the service's instances; everyone is told.
    fault = ben_page.locator("[data-sim-fault]")
    fault.locator('[name="kind"]').select_option("kill")
    fault.locator('[name="component_id"]').select_option("api")
    fault.locator('[name="value"]').fill("2")
    fault.get_by_role("button", name="Inject").click()
    for page in pages.values():
        expect(page.locator("[data-sim-fault-log]")).to_contain_text("Fault injected: kill on api", timeout=RUN_BOUND)

    # Ann, the room's owner, cancels Ben's run; all three see it cancelled.
    pages["ann"].locator('[data-sim-action="cancel"]').click()
    for page in pages.values():
        expect(page.locator("[data-sim-status]")).to_have_attribute("data-sim-status", "cancelled", timeout=RUN_BOUND)
        expect(page.locator('[data-sim-run-id][data-status="cancelled"]')).to_have_count(1)
    assert errors == []
