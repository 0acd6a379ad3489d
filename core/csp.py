"""The Content-Security-Policy header: django-csp's middleware, with what a fixed setting cannot say.

Pages (text/html) get settings.CONTENT_SECURITY_POLICY plus, in connect-src, the origin of the
page's own WebSocket (static/js/live.js connects to ws(s)://<the page's host>/ws/): 'self' matches
ws:/wss: only in browsers that follow CSP Level 3, and a bare `wss:` would allow every host.
Everything else (the JSON API, admin's JavaScript catalogue) is no document: it may load nothing
and be framed by no one (NOT_A_PAGE). Static files never reach this middleware (WhiteNoise answers
them first). django-csp leaves DEBUG's technical 404/500 pages, with their inline styles, alone.
"""

import functools
from dataclasses import asdict

from csp.constants import HEADER, NONE
from csp.middleware import CheckableLazyObject, CSPMiddleware, PolicyParts
from csp.utils import build_policy
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from core.middleware import OnTheLoop

NOT_A_PAGE = {"default-src": [NONE], "frame-ancestors": [NONE]}
# What a response may set to change its own policy (django-csp's decorators): such a response
# goes django-csp's whole way.
_OWN_POLICY = tuple(f"_csp_{what}{ro}" for what in ("exempt", "config", "update", "replace") for ro in ("", "_ro"))
_DEBUG_EXEMPT = (404, 500)  # django-csp leaves these alone under DEBUG (the technical pages)


@functools.cache
def not_a_page_header() -> str:
    """NOT_A_PAGE's header, as django-csp builds it (built once: the same for every response)."""
    return build_policy(**asdict(PolicyParts(config=NOT_A_PAGE)))


def websocket_origin(request: HttpRequest) -> str | None:
    """ws://host[:port], or wss:// when the request came over TLS (SECURE_PROXY_SSL_HEADER)."""
    try:
        host = request.get_host()
    except DisallowedHost:  # Django answers 400 to a Host outside ALLOWED_HOSTS; name no origin
        return None
    return f"{'wss' if request.is_secure() else 'ws'}://{host}"


class ContentSecurityPolicyMiddleware(OnTheLoop, CSPMiddleware):
    """Both steps only read and set headers: on the loop under ASGI (core/middleware.py).

    A response that is no page gets NOT_A_PAGE's header as built once, rather than django-csp
    building it again (about 55 µs a response: every API answer; docs/performance.md), unless
    anything could make its policy differ: a policy of its own, a nonce used, a report-only
    policy or excluded prefixes configured, DEBUG's technical pages."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if (
            response.get("Content-Type", "").startswith("text/html")
            or any(hasattr(response, name) for name in _OWN_POLICY)
            or getattr(request, "_csp_nonce", None) is not None
            or getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)
            or (getattr(settings, "CONTENT_SECURITY_POLICY", None) or {}).get("EXCLUDE_URL_PREFIXES")
            or (settings.DEBUG and response.status_code in _DEBUG_EXEMPT)
        ):
            return super().process_response(request, response)
        if HEADER not in response:
            response[HEADER] = not_a_page_header()
        # As django-csp does: a nonce asked for after this would not be in the header.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)  # type: ignore[attr-defined]
        return response

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if report_only:  # no report-only policy is configured; nothing to add to it
            return parts
        if not response.get("Content-Type", "").startswith("text/html"):
            return PolicyParts(config=NOT_A_PAGE)
        origin = websocket_origin(request)
        if origin:
            update = dict(parts.update or {})
            update["connect-src"] = [*update.get("connect-src", ()), origin]
            parts.update = update
        return parts
