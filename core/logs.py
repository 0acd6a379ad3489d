"""Structured logs: JSON lines in production, readable lines in development (structlog).

Every log record, ours (stdlib `logging.getLogger(__name__)`, as everywhere in Parley) and the
libraries', goes through one structlog pipeline (`logging_config`, used by config/settings.py as
LOGGING): a timestamp, the level, the logger, the context bound for the request or socket
(`request_id`, `socket_id`, `user_id`, `room_id`, from contextvars), any `extra={...}` fields,
then redaction, then JSON (`LOG_FORMAT=json`, the default when DEBUG is off) or a console line.

Never logged, whatever a caller passes (redact() below): values of keys that name secrets or
message bodies (password, token, ticket, cookie, authorization, secret, content, text, body...),
credentials inside URLs (`redis://:pw@host`), `ticket=` / `token=` query parameters, bearer
tokens and JWTs inside messages and exception text. Tracebacks are plain text (never frame
locals, which could hold any of those). Libraries that log request bodies or frames at DEBUG
(SQL with its parameters, template contexts, botocore, websockets frames) are capped at INFO.
tests/test_observability.py greps the logs of a whole flow at DEBUG for every secret and every
message text.

`RequestContextMiddleware` (first in MIDDLEWARE) gives each HTTP request its id (X-Request-ID
from the client if it looks like one, else a new one; echoed in the response), binds it for the
request's logs, logs one "request" line (method, route, status, duration, user) and counts the
request in core.metrics.
"""

import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import structlog
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest
from django.utils.functional import LazyObject, empty

access_logger = logging.getLogger("parley.access")

# Keys whose values never reach a log line (compared lower-case, also as suffixes: "access_token").
SECRET_KEYS = (
    "password",
    "passwd",
    "token",
    "ticket",
    "secret",
    "authorization",
    "cookie",
    "sessionid",
    "csrf",
    "content",
    "text",
    "body",
    "signature",
    "api_key",
    "dsn",
)
REDACTED = "[redacted]"
_PATTERNS = [
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.I), r"\1[redacted]@"),  # scheme://user:pw@
    (re.compile(r"\b(ticket|token|access|refresh|password|sessionid|csrftoken)=[^&\s\"']+", re.I), r"\1=[redacted]"),
    (re.compile(r"\b(bearer|jwt)\s+[A-Za-z0-9._~+/=-]+", re.I), r"\1 [redacted]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "[jwt]"),
]


def _secret_key(key: str) -> bool:
    key = key.lower()
    return any(part in key for part in SECRET_KEYS)


def scrub(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: drop secret-named values, scrub secrets out of the strings."""
    for key, value in list(event.items()):
        if key != "event" and _secret_key(key):
            event[key] = REDACTED
        elif isinstance(value, str):
            event[key] = scrub(value)
        elif isinstance(value, HttpRequest):  # django.request's extra: never its query string
            event[key] = f"{value.method} {value.path}"
        elif not isinstance(value, int | float | bool | None):  # rendered by its repr: scrub that
            event[key] = scrub(repr(value))
    return event


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def logging_config(*, json: bool, level: str) -> dict[str, Any]:
    """Django's LOGGING: every record through structlog, rendered as JSON or for a console."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    quiet = {"level": "INFO"}  # these log bodies, parameters or frames at DEBUG
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "foreign_pre_chain": _shared_processors(),
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,  # plain text: never frame locals
                    redact,
                    renderer,
                ],
            }
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.channels.server": {"level": "WARNING"},
            # uvicorn's own lines through the same pipeline, at LOG_LEVEL (this configuration is
            # applied after uvicorn's own, whose --log-level it would otherwise leave at INFO in
            # the workers: two lines per socket opened, ~5 % of a connection storm's CPU).
            "uvicorn": {"handlers": ["console"], "propagate": False, "level": level},
            "uvicorn.access": {"handlers": ["console"], "propagate": False},
            "django.db.backends": quiet,
            "django.template": quiet,  # its DEBUG lines print template contexts (CSRF tokens)
            "botocore": quiet,
            "boto3": quiet,
            "s3transfer": quiet,
            "urllib3": quiet,
            "websockets": quiet,
            "sentry_sdk": quiet,
        },
    }


# -- context ------------------------------------------------------------------------------------


def bind_socket(socket_id: str, user_id: object) -> None:
    """A socket's logs name it and its user (the consumer's task keeps these for its lifetime)."""
    structlog.contextvars.bind_contextvars(socket_id=socket_id, user_id=user_id)


def bind_room(room: object) -> None:
    """The room a frame is about, for the logs of its handling (a client's value: ids only)."""
    structlog.contextvars.bind_contextvars(room_id=room if isinstance(room, str) and len(room) <= 64 else None)


def _user_id(request) -> object:
    """The request's user id if authentication already ran (never loads it: in async code that
    would be a database query on the loop)."""
    user = request.__dict__.get("user")
    if isinstance(user, LazyObject):
        wrapped = user.__dict__.get("_wrapped", empty)
        user = None if wrapped is empty else wrapped
    return user.pk if user is not None and getattr(user, "is_authenticated", False) else None


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id_of(header: str | None) -> str:
    return header if header and _REQUEST_ID.fullmatch(header) else uuid.uuid4().hex


class RequestContextMiddleware:
    """Request id (X-Request-ID in and out), bound log context, one access line, HTTP metrics."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        from core import metrics

        self.metrics = metrics
        metrics.start_pool_sampler()

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        started, tokens = self._begin(request)
        try:
            response = self.get_response(request)
        except BaseException:
            structlog.contextvars.reset_contextvars(**tokens)
            raise
        return self._end(request, response, started, tokens)

    async def __acall__(self, request):
        started, tokens = self._begin(request)
        try:
            response = await self.get_response(request)
        except BaseException:
            structlog.contextvars.reset_contextvars(**tokens)
            raise
        return self._end(request, response, started, tokens)

    def _begin(self, request) -> tuple[float, Mapping[str, Any]]:
        request.request_id = request_id_of(request.headers.get("X-Request-ID"))
        return time.perf_counter(), structlog.contextvars.bind_contextvars(request_id=request.request_id)

    def _end(self, request, response, started: float, tokens: Mapping[str, Any]):
        seconds = time.perf_counter() - started
        try:
            response["X-Request-ID"] = request.request_id
            match = getattr(request, "resolver_match", None)
            if match is not None:
                route = match.route or match.view_name or "unknown"
            elif request.path.startswith("/static/"):
                route = "static"
            else:
                route = "unmatched"
            user_id = _user_id(request)
            self.metrics.http_request(route, request.method or "", response.status_code, seconds)
            access_logger.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000, 2),
                    "user_id": user_id,
                },
            )
        finally:
            structlog.contextvars.reset_contextvars(**tokens)
        return response
