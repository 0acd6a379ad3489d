"""Time to first render of a board with 10,000 elements in Chromium (the board page, static/js/board/).

    scripts/stack.py test -- .venv/bin/python bench/board_render.py        # ELEMENTS=10000 RUNS=5

Makes a board of ELEMENTS elements (rectangles, ellipses, sticky notes with text, arrows between
neighbours: a mix like a real board) through boards.services in updates of 1,000 elements
each, starts one server (uvicorn, as the browser tests do, DEBUG off), signs in with headless
Chromium (Debian's, like the browser tests) and opens the board page RUNS times in a fresh page.
Figures, each read from the page's own performance marks (static/js/board/app.js) as
milliseconds from the navigation's start (so they include the HTML, the modules, the socket's
connection and the requests):
- rendered_ms (`parley-board-rendered`): every element drawn as SVG and the view fitted. The
  page draws the board's JSON (GET /api/v1/boards/{id}/, preloaded by the template) as soon as it
  arrives, before the Yjs state does; painted_ms (`parley-board-painted`): the same, once the
  browser has laid it out and painted it (the task after the next animation frame): the figure
  to hold against the 1 s target;
- live_ms (`parley-board-live`): board.state applied to the Y.Doc and adopted on screen (editable);
- fit_all_ms: then Shift+1 (fit the whole board, drawing every element) until painted;
- phases: DOMContentLoaded, page.js running (its module graph loaded), the JSON request's start
  and end, the JSON parsed, the preview drawn (rendered), board.join sent, board.state received and
  applied.
The first run warms caches and is reported apart. With NEW_SEQUENCE=1 one element is moved
(one update) before each run, so that every run opens the board at a number the server has not
rendered yet (the worst case for the server's rendering, which is kept per number).

Then the JSON export (GET /api/v1/boards/{id}/export/, timed in the page with fetch, RUNS times):
one element moved, the export fetched twice: export_new_ms, the first at that new number, and
export_again_ms, the second.
Prints the figures and writes bench/results/board_render.json.
"""

import json
import os
import statistics
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pycrdt import Doc, Map

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("PARLEY_TESTING", "1")

import django  # noqa: E402

django.setup()

from playwright.sync_api import sync_playwright  # noqa: E402

from boards.services import board_create, board_update_apply  # noqa: E402
from rooms.services import room_create  # noqa: E402
from tests.conftest import APP, UVICORN_OPTIONS, free_port, server_env, wait_for_port  # noqa: E402 (serve.py's)
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

ELEMENTS = int(os.environ.get("ELEMENTS", "10000"))
RUNS = int(os.environ.get("RUNS", "5"))
NEW_SEQUENCE = os.environ.get("NEW_SEQUENCE", "") == "1"
PER_UPDATE = 1000
PASSWORD = "pale-orchid-lantern-93"


def element(i: int) -> dict:
    kind = ("rect", "ellipse", "sticky", "arrow")[i % 4]
    x, y = (i % 100) * 160.0, (i // 100) * 120.0
    props: dict = {"type": kind, "x": x, "y": y, "w": 120.0, "h": 80.0, "z": f"a{i:05d}", "stroke": "#1f2937"}
    if kind == "sticky":
        props.update(fill="#fde68a", text=f"note {i}", fontSize=16.0)
    if kind == "arrow":
        props.update(points=[0.0, 0.0, 40.0, 0.0], **{"from": f"e{i - 1}", "to": f"e{i + 1}"})
    return props


class Mover:
    """Moves element e0 (one small update through boards.services): a new number."""

    def __init__(self, user, board: str, doc: Doc) -> None:
        self.user, self.board, self.doc, self.step = user, board, doc, 0

    def move(self) -> None:
        # In a thread: Django refuses the ORM where Playwright's loop runs.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(self._move).result()

    def _move(self) -> None:
        self.step += 1
        before = self.doc.get_state()
        self.doc.get("elements", type=Map)["e0"]["x"] = float(self.step)
        update = self.doc.get_update(before)
        board_update_apply(user=self.user, board_id=self.board, update=update, client_update_id=uuid.uuid4())


EXPORT = """async (board) => {
    const timed = async () => {
        const start = performance.now();
        const response = await fetch(`/api/v1/boards/${board}/export/`);
        await response.text();
        return performance.now() - start;
    };
    const first = await timed();
    return [first, await timed()];
}"""


def seed() -> tuple[str, str, str, Mover]:
    from accounts.models import User

    user = User.objects.create_user(f"render-{uuid.uuid4().hex[:6]}", password=PASSWORD)
    room = room_create(creator=user, name="Render bench", kind="private")
    board = board_create(user=user, room_id=room.pk, title=f"{ELEMENTS} elements")
    doc = Doc()
    elements = doc.get("elements", type=Map)
    for start in range(0, ELEMENTS, PER_UPDATE):
        before = doc.get_state()
        with doc.transaction():
            for i in range(start, min(ELEMENTS, start + PER_UPDATE)):
                elements[f"e{i}"] = Map(element(i))
        board_update_apply(user=user, board_id=board.pk, update=doc.get_update(before), client_update_id=uuid.uuid4())
    return user.username, str(room.pk), str(board.pk), Mover(user, str(board.pk), doc)


DONE = "() => ['parley-board-live', 'parley-board-painted'].every((name) => performance.getEntriesByName(name).length)"
PHASES = (
    "painted_ms",
    "dom_ms",
    "module_ms",
    "json_start_ms",
    "json_end_ms",
    "json_parsed_ms",
    "rendered_ms",
    "join_ms",
    "state_ms",
    "applied_ms",
    "live_ms",
)
FIT_ALL = """() => new Promise((resolve) => {
    const start = performance.now();
    window.parleyBoard.fit();
    requestAnimationFrame(() => setTimeout(() => resolve(Math.round(performance.now() - start)), 0));
})"""
MEASURE = """() => {
    const mark = performance.getEntriesByName("parley-board-rendered")[0];
    const at = (name) => Math.round(performance.getEntriesByName(name)[0]?.startTime ?? -1);
    const json = performance.getEntriesByType("resource").find((r) => r.name.includes("/api/v1/boards/"));
    return {rendered_ms: mark.startTime, elements: mark.detail.elements,
            join_ms: at("parley-board-join"), state_ms: at("parley-board-state"),
            applied_ms: at("parley-board-applied"), live_ms: at("parley-board-live"),
            painted_ms: at("parley-board-painted"), module_ms: at("parley-board-module"),
            json_parsed_ms: at("parley-board-json"),
            dom_ms: Math.round(performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd),
            json_start_ms: Math.round(json?.requestStart ?? -1), json_end_ms: Math.round(json?.responseEnd ?? -1),
            nodes: document.querySelectorAll(".board-elements > g").length};
}"""


def main() -> int:
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, check=True)
    username, room, board, mover = seed()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), *UVICORN_OPTIONS, APP],
        cwd=ROOT,
        env=server_env(),
        stdout=subprocess.DEVNULL,
    )
    runs = []
    try:
        wait_for_port(port, server)
        base = f"http://127.0.0.1:{port}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 800})
            page = context.new_page()
            page.goto("/login/")
            page.get_by_label("Username").fill(username)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{base}/")
            for _ in range(RUNS + 1):  # the first run warms the caches (modules, the server's document)
                if NEW_SEQUENCE:
                    mover.move()
                page = context.new_page()
                cdp = context.new_cdp_session(page)
                cdp.send("Performance.enable", {"timeDomain": "threadTicks"})
                page.goto(f"/rooms/{room}/boards/{board}/")
                page.wait_for_function(DONE, timeout=60_000)
                run = page.evaluate(MEASURE)
                # The renderer's main-thread work until now, in seconds of thread time (CPU, not
                # wall clock: what a loaded machine inflates least).
                metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
                for name in ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration"):
                    run[f"cpu_{name}_ms"] = round(metrics.get(name, -0.001) * 1000)
                # Then Shift+1: fit the whole board, which draws all of it (until painted).
                run["fit_all_ms"] = page.evaluate(FIT_ALL)
                runs.append(run)
                page.close()
            page = context.new_page()
            page.goto(f"/rooms/{room}/")
            exports = []
            for _ in range(RUNS):
                mover.move()
                exports.append(page.evaluate(EXPORT, board))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=15)
    cold, warm = runs[0], runs[1:]
    times = [run["painted_ms"] for run in warm]
    figures = {
        "elements": ELEMENTS,
        "runs": len(warm),
        "first_run_painted_ms": round(cold["painted_ms"], 1),
        "painted_median_ms": round(statistics.median(times), 1),
        "rendered_median_ms": round(statistics.median(run["rendered_ms"] for run in warm), 1),
        "painted_min_ms": round(min(times), 1),
        "painted_max_ms": round(max(times), 1),
        "load_average": os.getloadavg()[0],
        "svg_nodes_drawn_at_first_paint": warm[-1]["nodes"],
        "fit_all_median_ms": round(statistics.median(run["fit_all_ms"] for run in warm)),
        "main_thread_cpu_ms_until_live": {
            key: round(statistics.median(run[key] for run in warm)) for key in warm[0] if key.startswith("cpu_")
        },
        "phases_ms": {key: round(statistics.median(run[key] for run in warm)) for key in PHASES},
        "new_sequence_each_run": NEW_SEQUENCE,
        "export_new_ms": [round(first) for first, _ in exports],
        "export_again_ms": [round(again) for _, again in exports],
        "export_new_median_ms": round(statistics.median(first for first, _ in exports)),
        "export_again_median_ms": round(statistics.median(again for _, again in exports)),
    }
    print(json.dumps(figures, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "board_render.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if all(run["elements"] == ELEMENTS for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
