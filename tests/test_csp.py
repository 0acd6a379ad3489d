"""The Content-Security-Policy header (core/csp.py, settings.CONTENT_SECURITY_POLICY): every HTML
response carries the page policy, with the page's own WebSocket origin in connect-src; JSON and
other non-HTML responses carry `default-src 'none'; frame-ancestors 'none'`; and what the pages
render needs nothing the policy refuses (tests/test_browser.py checks the same in Chromium)."""

import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import include, path

from rooms.models import Room
from tests.conftest import client_for, room_with

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent

PAGE_POLICY = {
    "default-src": ["'none'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'", "ws://testserver"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
NOT_A_PAGE_POLICY = {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}


def policy(response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as {directive: [sources]} (order of directives is free)."""
    header = response.headers.get("Content-Security-Policy")
    assert header, f"{response.status_code} {response.get('Content-Type')}: no Content-Security-Policy"
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *sources = part.split()
        assert name not in directives, f"{name} twice in {header!r}"
        directives[name] = sources
    assert "Content-Security-Policy-Report-Only" not in response.headers
    return directives


@pytest.fixture
def people(make_user):
    owner, outsider = make_user("owner"), make_user("outsider")
    room = room_with(owner, name="Crew", kind=Room.Kind.PRIVATE)
    public = room_with(make_user("host"), name="Lobby", kind=Room.Kind.PUBLIC)
    return {"owner": owner, "outsider": outsider, "room": room, "public": public}


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff(django_user_model) -> Client:
    return logged_in(django_user_model.objects.create_superuser("root", "root@example.com", "correct-horse-battery"))


def html_pages(people, staff) -> list[tuple[str, Client, str, int]]:
    """(what, client, path, status) of every kind of HTML page."""
    room, public = people["room"], people["public"]
    membership = room.memberships.get(user=people["owner"])
    owner, outsider = logged_in(people["owner"]), logged_in(people["outsider"])
    return [
        ("login", Client(), "/login/", 200),
        ("signup", Client(), "/signup/", 200),
        ("home", owner, "/", 200),
        ("room", owner, f"/rooms/{room.pk}/", 200),
        ("room preview", outsider, f"/rooms/{public.pk}/", 200),
        ("redirect to sign in", Client(), "/", 302),
        ("page not found", owner, "/no-such-page/", 404),
        ("room not found", outsider, f"/rooms/{room.pk}/", 404),
        ("admin login", Client(), "/admin/login/", 200),
        ("admin index", staff, "/admin/", 200),
        ("admin list", staff, "/admin/rooms/room/", 200),
        ("admin change form", staff, f"/admin/rooms/room/{room.pk}/change/", 200),
        ("admin add form", staff, "/admin/accounts/user/add/", 200),
        ("admin password form", staff, f"/admin/accounts/user/{people['owner'].pk}/password/", 200),
        ("admin delete confirmation", staff, f"/admin/rooms/membership/{membership.pk}/delete/", 200),
    ]


def test_every_html_page_carries_the_page_policy(people, staff):
    for what, client, url, status in html_pages(people, staff):
        response = client.get(url)
        assert response.status_code == status, what
        assert response["Content-Type"].startswith("text/html"), what
        assert policy(response) == PAGE_POLICY, what


def test_the_policy_allows_no_inline_script_no_eval_and_no_inline_style(people, staff):
    response = Client().get("/login/")
    header = response["Content-Security-Policy"]
    for loophole in ("unsafe-inline", "unsafe-eval", "unsafe-hashes", "'nonce-", "'sha256-", "*", "http:", "https:"):
        assert loophole not in header
    # The other security headers are still there.
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_the_websocket_origin_follows_the_request(people):
    owner = logged_in(people["owner"])
    url = f"/rooms/{people['room'].pk}/"
    # Over TLS (directly or behind the proxy's X-Forwarded-Proto), the page connects to wss://.
    assert policy(owner.get(url, secure=True))["connect-src"] == ["'self'", "wss://testserver"]
    forwarded = owner.get(url, headers={"X-Forwarded-Proto": "https", "Host": "testserver"})
    assert policy(forwarded)["connect-src"] == ["'self'", "wss://testserver"]
    # The host and port are the page's own (what static/js/live.js connects to: location.host).
    assert policy(owner.get(url, headers={"Host": "localhost:8000"}))["connect-src"] == [
        "'self'",
        "ws://localhost:8000",
    ]


def test_a_host_outside_allowed_hosts_gets_no_websocket_origin():
    response = Client().get("/login/", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert policy(response) == {**PAGE_POLICY, "connect-src": ["'self'"]}


def test_the_csrf_failure_page_is_ours_and_needs_no_inline_style(people):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"username": "owner", "password": "x"})
    assert response.status_code == 403
    assert policy(response) == PAGE_POLICY
    html = response.content.decode()
    assert "That form has expired" in html
    assert_no_inline_code(html, "CSRF failure page")


def test_json_and_other_non_html_responses_carry_only_default_src_none(people, staff):
    owner = client_for(people["owner"])
    responses = {
        "rooms": owner.get("/api/v1/rooms/"),
        "me": owner.get("/api/v1/me/"),
        "not authenticated": Client().get("/api/v1/rooms/"),
        "api not found": owner.get("/api/v1/nothing-here/"),
        "bad json": owner.post("/api/v1/rooms/", data="{", content_type="application/json"),
        "schema": owner.get("/api/v1/schema/"),
        "admin js catalogue": staff.get("/admin/jsi18n/"),
    }
    for what, response in responses.items():
        assert not response["Content-Type"].startswith("text/html"), what
        assert policy(response) == NOT_A_PAGE_POLICY, what


def test_static_files_are_served_without_the_header():
    # WhiteNoise answers before the middleware runs: CSP governs documents, not the files they load.
    response = Client().get("/static/js/ui.js")
    assert response.status_code == 200
    assert "Content-Security-Policy" not in response.headers


def test_debug_technical_pages_are_left_alone(settings, people):
    # Django's technical 404/500 pages (DEBUG only) use inline styles and scripts; django-csp skips them.
    settings.DEBUG = True
    response = logged_in(people["owner"]).get("/no-such-page/")
    assert response.status_code == 404
    assert "Content-Security-Policy" not in response.headers


def _boom(request):
    raise RuntimeError("boom")


urlpatterns = [path("boom/", _boom), path("", include("config.urls"))]
handler500 = "core.api.server_error"


@pytest.mark.urls("tests.test_csp")
def test_server_error_pages_carry_the_policy(people):
    client = Client(raise_request_exception=False)
    response = client.get("/boom/")
    assert response.status_code == 500
    assert policy(response) == PAGE_POLICY


# -- what the pages contain ------------------------------------------------------------------------

INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*\btype=\"application/json\")[^>]*>", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE)
JAVASCRIPT_URL = re.compile(r"""(?:href|src|action)\s*=\s*["']?\s*javascript:""", re.IGNORECASE)


def assert_no_inline_code(html: str, what: str) -> None:
    for name, pattern in [
        ("inline <script>", INLINE_SCRIPT),
        ("inline style", INLINE_STYLE),
        ("event handler attribute", EVENT_HANDLER),
        ("javascript: URL", JAVASCRIPT_URL),
    ]:
        match = pattern.search(html)
        assert match is None, f"{what}: {name} {html[max(0, match.start() - 80) : match.end() + 80]!r}"


def test_rendered_pages_have_no_inline_script_style_or_handlers(people, staff):
    for what, client, url, _ in html_pages(people, staff):
        assert_no_inline_code(client.get(url).content.decode(), what)


def test_templates_and_scripts_need_nothing_the_policy_refuses():
    for template in (ROOT / "templates").rglob("*.html"):
        assert_no_inline_code(template.read_text(), str(template.relative_to(ROOT)))
    # Setting element.style.x (CSSOM) is allowed; a style attribute or markup with one is not.
    refused = re.compile(
        r"""setAttribute\(\s*["']style|\.innerHTML\s*=(?!\s*["']{2})|insertAdjacentHTML|outerHTML\s*="""
        r"""|\beval\(|new Function\(|set(?:Timeout|Interval)\(\s*["'`]""",
    )
    # The board draws thousands of elements from markup in one parse (docs/performance.md, "first
    # render of 10,000 elements"): render.js may assign innerHTML, with every value escaped and no
    # style attribute or handler in its markup (static/js/tests/board-render.test.js proves it).
    # A message's body is the server's sanitised HTML (messaging/formatting.py): rich-text.js
    # parses it inert and cuts it to the same allowlist again (static/js/tests/rich-text.test.js).
    markup_builders = {ROOT / "static" / "js" / "board" / "render.js", ROOT / "static" / "js" / "rich-text.js"}
    for script in (ROOT / "static" / "js").rglob("*.js"):
        if "tests" in script.relative_to(ROOT / "static" / "js").parts:
            continue
        text = script.read_text()
        if script in markup_builders:
            text = re.sub(r"\.innerHTML\s*=", ".innerHTML_ =", text)
        match = refused.search(text)
        assert match is None, f"{script.relative_to(ROOT)}: {match.group(0)!r}"


def test_a_response_that_is_no_page_gets_its_header_without_building_a_policy(people, monkeypatch):
    """The header of a response that is no page is the same every time: built once, not per
    response (django-csp's build, about 55 µs, on every API answer). Pages still go its way."""
    from csp import middleware as csp_middleware

    built = []
    build_policy = csp_middleware.build_policy
    monkeypatch.setattr(csp_middleware, "build_policy", lambda **parts: built.append(parts) or build_policy(**parts))
    owner = client_for(people["owner"])
    for _ in range(3):
        response = owner.get("/api/v1/rooms/")
        assert response.status_code == 200 and policy(response) == NOT_A_PAGE_POLICY
    assert built == []
    assert "connect-src" in policy(logged_in(people["owner"]).get("/"))
    assert built


def test_an_exempt_response_or_a_report_only_policy_still_goes_django_csps_way(rf, settings):
    from csp.constants import NONE, SELF
    from csp.decorators import csp_exempt
    from django.http import JsonResponse

    from core.csp import ContentSecurityPolicyMiddleware

    def answer(request):
        return JsonResponse({})

    exempt = ContentSecurityPolicyMiddleware(csp_exempt()(answer))(rf.get("/api/v1/example/"))
    assert "Content-Security-Policy" not in exempt.headers
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": {"default-src": [SELF], "object-src": [NONE]}}
    response = ContentSecurityPolicyMiddleware(answer)(rf.get("/api/v1/example/"))
    report_only = sorted(part.strip() for part in response.headers["Content-Security-Policy-Report-Only"].split(";"))
    assert report_only == ["default-src 'self'", "object-src 'none'"]
    del response.headers["Content-Security-Policy-Report-Only"]
    assert policy(response) == NOT_A_PAGE_POLICY
