"""One error type for the whole product.

Services raise `ApplicationError` (or a subclass). The REST exception handler and the WebSocket
consumer render it the same way: a stable machine-readable `code` plus a human `message`.
"""

import django.db
import psycopg
import redis.exceptions


class ApplicationError(Exception):
    code = "error"
    status = 400
    message = "The request could not be completed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        fields: dict[str, list[str]] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.status = status or self.status
        self.fields = fields
        super().__init__(self.message)

    def as_dict(self) -> dict:
        data: dict = {"code": self.code, "message": self.message}
        if self.fields:
            data["fields"] = self.fields
        return data


class NotFound(ApplicationError):
    """Raised for missing objects and for objects the user may not see: never confirm existence."""

    code = "not_found"
    status = 404
    message = "Not found."


class Forbidden(ApplicationError):
    """Raised only where the user may already see the object but may not do this to it."""

    code = "forbidden"
    status = 403
    message = "You are not allowed to do that."


class InvalidInput(ApplicationError):
    code = "invalid"
    status = 400
    message = "Invalid input."


class Conflict(ApplicationError):
    code = "conflict"
    status = 409
    message = "Conflict."


class Unavailable(ApplicationError):
    """A dependency (PostgreSQL, Redis) cannot be reached right now: nothing was done; retry."""

    code = "unavailable"
    status = 503
    message = "Parley is briefly unavailable; please retry."
    retry_after_ms = 1000

    def as_dict(self) -> dict:
        return super().as_dict() | {"retry_after_ms": self.retry_after_ms}


class Internal(ApplicationError):
    code = "internal"
    status = 500
    message = "Something went wrong; please retry."


def is_outage(error: BaseException) -> bool:
    """Whether `error` says a dependency is unreachable (rather than that the request is wrong)."""
    return isinstance(
        error,
        django.db.OperationalError
        | django.db.InterfaceError
        | psycopg.OperationalError
        | psycopg.InterfaceError
        | redis.exceptions.ConnectionError
        | redis.exceptions.TimeoutError,
    )


class RateLimited(ApplicationError):
    """Too many of these too fast: retry after `retry_after_ms` (core.ratelimit)."""

    code = "rate_limited"
    status = 429
    message = "Slow down: too many requests."

    def __init__(
        self,
        retry_after_seconds: float,
        message: str | None = None,
        *,
        code: str | None = None,
        fields: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message, code=code, fields=fields)
        self.retry_after_ms = max(1, int(retry_after_seconds * 1000 + 0.999))

    def as_dict(self) -> dict:
        return super().as_dict() | {"retry_after_ms": self.retry_after_ms}
