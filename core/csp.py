"""The Content-Security-Policy header: django-csp's middleware, with what a fixed setting cannot say.

Pages (text/html) get settings.CONTENT_SECURITY_POLICY plus, in connect-src, the origin of the
page's own WebSocket (static/js/live.js connects to ws(s)://<the page's host>/ws/): 'self' matches
ws:/wss: only in browsers that follow CSP Level 3, and a bare `wss:` would allow every host.
Everything else (the JSON API, admin's JavaScript catalogue) is no document: it may load nothing
and be framed by no one (NOT_A_PAGE). Static files never reach this middleware (WhiteNoise answers
them first). django-csp leaves DEBUG's technical 404/500 pages, with their inline styles, alone.
"""

from csp.constants import NONE
from csp.middleware import CSPMiddleware, PolicyParts
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from core.middleware import OnTheLoop

NOT_A_PAGE = {"default-src": [NONE], "frame-ancestors": [NONE]}


def websocket_origin(request: HttpRequest) -> str | None:
    """ws://host[:port], or wss:// when the request came over TLS (SECURE_PROXY_SSL_HEADER)."""
    try:
        host = request.get_host()
    except DisallowedHost:  # Django answers 400 to a Host outside ALLOWED_HOSTS; name no origin
        return None
    return f"{'wss' if request.is_secure() else 'ws'}://{host}"


class ContentSecurityPolicyMiddleware(OnTheLoop, CSPMiddleware):
    """Both steps only read and set headers: on the loop under ASGI (core/middleware.py)."""

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
