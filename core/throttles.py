"""REST rate limits (DRF throttles on the Redis cache, so every server process shares them).

Over a limit, the API answers 429 `rate_limited` with `retry_after_ms` and a Retry-After header
(core.api). Rates are in settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"].

- Sign-in (JWT and the web form) per client address and per account name, sign-up per address:
  password guessing and mass sign-ups slow to a crawl.
- Writes (message sends, edits and deletes, receipts) per user, for views that name their
  `write_scope`: the REST twin of the socket's token buckets (messaging.consumers).
- Mail that people make the server send (an email change's confirmation, a password reset, a
  workspace invitation) per sender and per address it goes to (`budgets_take`, called by the
  services that send it): a script with a token cannot turn Parley into a mail cannon.

Every throttle fails open: when the cache (Redis) cannot be reached or does not answer within
settings.REDIS_TIMEOUT, the request goes through unthrottled (a warning is logged), and for the
next FAIL_OPEN_SECONDS this process's throttles do not ask the cache at all, so that a Redis
outage costs one request per process a wait of REDIS_TIMEOUT, not every request. A message
send needs PostgreSQL only; making it wait for, or fail with, Redis would turn a Redis outage
into a REST outage. The socket's limits are in-process token buckets and never touch Redis.
"""

import hashlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import redis.exceptions
from django.http import HttpRequest
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import SimpleRateThrottle

from core.errors import RateLimited

if TYPE_CHECKING:  # rest_framework.views imports this module (DEFAULT_THROTTLE_CLASSES)
    from rest_framework.request import Request
    from rest_framework.views import APIView

    # The sign-in and sign-up throttles also count Django form posts (throttled_for). DRF types
    # its methods for its own Request, but what they read (META, POST) a Django request has too.
    AnyRequest = Request | HttpRequest


logger = logging.getLogger(__name__)

FAIL_OPEN_SECONDS = 5.0
CACHE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class _CacheOutage:
    """When this process's throttles last found the cache unreachable (time.monotonic())."""

    since: float | None = None

    @classmethod
    def ongoing(cls) -> bool:
        since = cls.since
        return since is not None and time.monotonic() - since < FAIL_OPEN_SECONDS

    @classmethod
    def begin(cls, error: Exception) -> None:
        cls.since = time.monotonic()
        logger.warning(
            "rate limits are off for %ss: the cache (Redis) cannot be reached (%r)", FAIL_OPEN_SECONDS, error
        )


class _FailOpen(SimpleRateThrottle):
    """A throttle that lets requests through while the cache cannot be reached (see the module)."""

    def allow_request(self, request: "Request", view: "APIView") -> bool:
        if _CacheOutage.ongoing():
            return True
        try:
            return super().allow_request(request, view)
        except CACHE_ERRORS as error:
            _CacheOutage.begin(error)
            return True


class _ScopedThrottle(_FailOpen):
    def get_ident_key(self, request: "AnyRequest") -> str | None:
        raise NotImplementedError

    def get_cache_key(self, request: "Request", view: "APIView") -> str | None:
        ident = self.get_ident_key(request)
        return None if ident is None else self.cache_format % {"scope": self.scope, "ident": ident}


class SignInAddressThrottle(_ScopedThrottle):
    scope = "signin_address"

    def get_ident_key(self, request: "AnyRequest") -> str | None:
        return self.get_ident(cast("Request", request))


class SignInAccountThrottle(_ScopedThrottle):
    scope = "signin_account"

    def get_ident_key(self, request: "AnyRequest") -> str | None:
        data = getattr(request, "data", None)
        if data is None:  # a Django form post
            data = request.POST
        username = data.get("username") if hasattr(data, "get") else None
        return username.lower()[:150] if isinstance(username, str) and username else None


class SignUpAddressThrottle(_ScopedThrottle):
    scope = "signup_address"

    def get_ident_key(self, request: "AnyRequest") -> str | None:
        return self.get_ident(cast("Request", request))


class WriteThrottle(_FailOpen):
    """Per user, for unsafe methods of views with a `write_scope` (e.g. "send")."""

    def __init__(self) -> None:  # the scope is the view's: rates are read in allow_request
        pass

    def allow_request(self, request: "Request", view: "APIView") -> bool:
        self.scope = getattr(view, "write_scope", None)
        if self.scope is None or request.method in SAFE_METHODS or not request.user.is_authenticated:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: "Request", view: "APIView") -> str:
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


SIGN_IN_THROTTLES = [SignInAddressThrottle, SignInAccountThrottle]


def throttled_for(request: HttpRequest, throttles: Sequence[type[SimpleRateThrottle]]) -> float | None:
    """For Django views (the sign-in and sign-up forms): the seconds to wait if any of
    `throttles` refuses `request`, else None (and the request is counted)."""
    waits = []
    for throttle_class in throttles:
        throttle = throttle_class()
        # No view: these throttles' cache keys come from the request alone.
        if not throttle.allow_request(cast("Request", request), cast("APIView", None)):
            waits.append(throttle.wait() or 1.0)
    return max(waits) if waits else None


class _Budget(SimpleRateThrottle):
    """A DRF rate (settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope]) counted for what a
    service names, not for a request."""

    def __init__(self, scope: str, ident: str) -> None:
        self.scope, self.ident = scope, ident
        super().__init__()
        limit, window = self.parse_rate(self.rate)
        self.limit, self.window = limit or 0, window or 1

    def get_cache_key(self, request: object = None, view: object = None) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.ident}

    def spent(self) -> bool:
        """Whether the budget has no use left (what allow_request checks, without counting one)."""
        self.key = self.get_cache_key()
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.window:
            self.history.pop()
        return len(self.history) >= self.limit


def address_ident(address: str) -> str:
    """An email address as a budget's key: case-folded and hashed (no addresses in Redis)."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()[:32]


def budgets_take(*budgets: tuple[str, str]) -> float | None:
    """One use of every (scope, ident) budget, or of none: None when all had one left (each is
    counted), else the seconds until every one of them has one again (none is counted, so a refused
    attempt costs nothing). Fails open like the throttles (see the module)."""
    if _CacheOutage.ongoing():
        return None
    try:
        counted = [_Budget(scope, ident) for scope, ident in budgets]
        waits = [budget.wait() or 1.0 for budget in counted if budget.spent()]
        if waits:
            return max(waits)
        for budget in counted:
            budget.throttle_success()
    except CACHE_ERRORS as error:
        _CacheOutage.begin(error)
    return None


def mail_budgets_take(*budgets: tuple[str, str], field: str = "email") -> None:
    """budgets_take for a mail about to be sent: RateLimited (429 `email_rate_limited`, with
    `retry_after_ms`, the message on `field`) when a budget is spent; nothing is counted then."""
    wait = budgets_take(*budgets)
    if wait is not None:
        minutes = max(1, -(-int(wait) // 60))
        message = f"Too many emails were asked for. Please try again in {minutes} minute{'s' if minutes > 1 else ''}."
        raise RateLimited(wait, message, code="email_rate_limited", fields={field: [message]})
