"""The web client's JavaScript unit tests (static/js/tests/*.test.js), run in the headless Chromium
the browser tests use (tests/test_browser.py). No Node, no server and no database: Playwright
answers the page's requests from static/ itself, under a made-up origin.

static/js/tests/run.js runs every JS test once per module here; each JS test then passes or fails
as its own pytest test (the names are read from the test modules).
"""

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.browser

STATIC = Path(__file__).resolve().parent.parent / "static"
JS_TESTS = STATIC / "js" / "tests"
ORIGIN = "http://parley.test"
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".html": "text/html",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
TEST_NAME = re.compile(r'^test\(\s*"((?:[^"\\]|\\.)*)"', re.MULTILINE)


def declared_tests() -> list[str]:
    """Every `test("…", …)` in the JS test modules, in file order."""
    return [name for path in sorted(JS_TESTS.glob("*.test.js")) for name in TEST_NAME.findall(path.read_text())]


def serve_static(route) -> None:
    """Answer a request of the test page with a file under static/ (404 for anything else)."""
    path = urlsplit(route.request.url).path
    file = (STATIC / path.removeprefix("/static/")).resolve()
    if not path.startswith("/static/") or not file.is_relative_to(STATIC) or not file.is_file():
        route.fulfill(status=404, content_type="text/plain", body="not found")
        return
    content_type = CONTENT_TYPES.get(file.suffix, "application/octet-stream")
    route.fulfill(status=200, content_type=content_type, body=file.read_bytes())


# The runner's own check: a failing assertion must make a test fail, with the values in its message.
SELF_CHECK = """async () => {
    const harness = await import("/static/js/tests/harness.js");
    const outcomes = [];
    for (const [actual, expected] of [[[1, 2], [2, 1]], [{a: 1}, {a: 1, b: 2}], ["1", 1], [[1, [2]], [1, [2]]]]) {
        try {
            harness.assertEqual(actual, expected);
            outcomes.push("passed");
        } catch (error) {
            outcomes.push(error.name);
        }
    }
    harness.test("a deliberately failing test", () => harness.assertEqual(1, 2, "one"));
    const results = await harness.runAll();
    return {outcomes, failing: results.find((result) => result.name === "a deliberately failing test")};
}"""


@dataclass
class JsRun:
    results: dict[str, dict]
    errors: list[str]
    self_check: dict


@pytest.fixture(scope="module")
def js_run() -> JsRun:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing; install it with: apt-get install -y chromium", pytrace=False)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            page.route(f"{ORIGIN}/**", serve_static)
            page.goto(f"{ORIGIN}/static/js/tests/index.html")
            try:
                page.wait_for_function("() => window.parleyTests !== undefined", timeout=15_000)
                results = page.evaluate("() => window.parleyTests")
            except PlaywrightError as error:
                pytest.fail(f"the JS tests did not run: {error}; page errors: {errors}", pytrace=False)
            self_check = page.evaluate(SELF_CHECK)
        finally:
            browser.close()
    return JsRun(results={result["name"]: result for result in results}, errors=errors, self_check=self_check)


@pytest.mark.parametrize("name", declared_tests())
def test_js(js_run: JsRun, name: str) -> None:
    result = js_run.results.get(name)
    assert result is not None, f"{name!r} did not run: is its module imported by static/js/tests/run.js?"
    assert result["ok"], result["error"]


def test_every_js_test_ran_once_and_the_page_raised_nothing(js_run: JsRun) -> None:
    declared = declared_tests()
    assert len(declared) >= 15
    assert len(set(declared)) == len(declared)
    assert sorted(js_run.results) == sorted(declared)
    assert js_run.errors == []


def test_the_js_runner_reports_failures(js_run: JsRun) -> None:
    assert js_run.self_check["outcomes"] == ["AssertionError", "AssertionError", "AssertionError", "passed"]
    assert js_run.self_check["failing"] == {
        "name": "a deliberately failing test",
        "ok": False,
        "error": "AssertionError: one: expected 2, got 1",
    }
