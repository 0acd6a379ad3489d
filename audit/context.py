"""Where the current request or socket comes from, for the entries it causes.

Services are called without the request, so its client address travels in a context variable:
AuditContextMiddleware sets it for HTTP requests, accounts.middleware.SocketAuthMiddleware for a
socket's whole life (its service calls run in threads that copy the context). Celery tasks and
management commands have none."""

import ipaddress
from contextvars import ContextVar, Token
from inspect import iscoroutinefunction
from typing import Any

from asgiref.sync import markcoroutinefunction

_client_ip: ContextVar[str] = ContextVar("parley_audit_client_ip", default="")
# The HTTP request being served, for its user where a form is not handed the request (the admin's
# password form); read lazily, as Django's authentication sets the user after this middleware.
_request: ContextVar[Any] = ContextVar("parley_audit_request", default=None)


def clean_ip(value: object) -> str:
    """A printable address, or "" for anything that is not one (never stored unchecked)."""
    try:
        return str(ipaddress.ip_address(str(value or "").strip()))
    except ValueError:
        return ""


def client_ip() -> str:
    # Checked here, when an entry is written, not per request: binding stays a plain set.
    return clean_ip(_client_ip.get())


def current_user() -> Any:
    """The signed-in user of the HTTP request being served, or None."""
    user = getattr(_request.get(), "user", None)
    return user if user is not None and user.is_authenticated else None


def bind_client_ip(value: object) -> Token[str]:
    return _client_ip.set(value if isinstance(value, str) else "")


def bind_socket_client(scope: dict[str, Any]) -> None:
    """A socket's address (ASGI scope["client"] is (host, port) or None), for its whole life."""
    client = scope.get("client")
    bind_client_ip(client[0] if client else "")


def _bind(request: Any) -> tuple[Token[str], Token[Any]]:
    return bind_client_ip(request.META.get("REMOTE_ADDR")), _request.set(request)


def _unbind(tokens: tuple[Token[str], Token[Any]]) -> None:
    _client_ip.reset(tokens[0])
    _request.reset(tokens[1])


class AuditContextMiddleware:
    """Binds the request's client address (REMOTE_ADDR: uvicorn puts the forwarded address there
    for trusted proxies, FORWARDED_ALLOW_IPS) for the entries the request's services record."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        tokens = _bind(request)
        try:
            return self.get_response(request)
        finally:
            _unbind(tokens)

    async def __acall__(self, request: Any) -> Any:
        tokens = _bind(request)
        try:
            return await self.get_response(request)
        finally:
            _unbind(tokens)
