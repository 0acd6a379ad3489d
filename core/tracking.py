"""Error tracking: Sentry, only when SENTRY_DSN is set (config/settings.py calls `init`).

Without a DSN, sentry-sdk is not even imported: nothing is sent, nothing is patched. With one,
events carry no personal data (`send_default_pii=False`: no user, no IP, no cookies), no request
bodies (`max_request_body_size="never"`), no frame locals (`include_local_variables=False`), and
`before_send` removes what could still hold a message body, a ticket or a token: request data,
cookies, query strings, the Authorization and Cookie headers, and any value under a key that
names one (`_SECRET_NAMES`), with secrets scrubbed out of the remaining text.

SENTRY_ENVIRONMENT, SENTRY_RELEASE and SENTRY_TRACES_SAMPLE_RATE (default 0: errors only) tune it.
"""

from collections.abc import Mapping
from typing import Any

from core.logs import REDACTED, scrub

_DROPPED_HEADERS = frozenset({"authorization", "cookie", "x-csrftoken", "proxy-authorization"})
# Keys whose values are dropped wherever they appear in an event (exact names, or these suffixes):
# not core.logs' substrings, which would hit Sentry's own keys ("contexts").
_SECRET_NAMES = frozenset(
    {"password", "token", "access", "refresh", "ticket", "content", "text", "body", "cookie", "cookies"}
    | {"authorization", "secret", "sessionid", "csrftoken", "csrfmiddlewaretoken", "x-ticket", "dsn"}
)
_SECRET_SUFFIXES = ("_token", "_password", "_secret", "_ticket", "-token", "-ticket")


def _secret_name(key: str) -> bool:
    key = key.lower()
    return key in _SECRET_NAMES or key.endswith(_SECRET_SUFFIXES)


def _clean(value: Any, depth: int = 0) -> Any:
    if depth > 12:
        return REDACTED
    if isinstance(value, dict):
        return {
            key: (REDACTED if isinstance(key, str) and _secret_name(key) else _clean(item, depth + 1))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_clean(item, depth + 1) for item in value]
    if isinstance(value, str):
        return scrub(value)
    return value


def before_send(event: dict[str, Any], hint: Mapping[str, Any] | None = None) -> dict[str, Any]:
    request = event.get("request")
    if isinstance(request, dict):
        for key in ("data", "cookies", "query_string", "env"):
            request.pop(key, None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {k: v for k, v in headers.items() if k.lower() not in _DROPPED_HEADERS}
        if isinstance(request.get("url"), str):
            request["url"] = request["url"].split("?", 1)[0]
    event.pop("user", None)
    for exception in (event.get("exception") or {}).get("values") or []:
        for frame in (exception.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    return _clean(event)


def init(
    dsn: str, *, environment: str = "", release: str = "", traces_sample_rate: float = 0.0, **options: Any
) -> bool:
    """Start Sentry if `dsn` is set; True if it was. `options` go to sentry_sdk.init (tests pass a
    transport)."""
    if not dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        environment=environment or None,
        release=release or None,
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        traces_sample_rate=traces_sample_rate,
        before_send=before_send,  # type: ignore[arg-type]
        before_send_transaction=before_send,  # type: ignore[arg-type]
        **options,
    )
    return True
