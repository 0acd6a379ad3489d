"""Django's own middleware, each step run on the event loop unless it may block.

Under ASGI, Django's `MiddlewareMixin` runs every process_request, process_view and
process_response of a middleware in the request's worker thread (`sync_to_async`, one round trip
each). Through settings.MIDDLEWARE that was 15 round trips for every API request, for steps that
read headers and set attributes. These subclasses run such steps on the loop, and still hand a step
to the thread when it may touch the database or a file:

- the session, when it is saved (`modified`, or SESSION_SAVE_EVERY_REQUEST);
- the CSRF check of an unsafe request to a view that is not exempt (it reads the form body, and a
  refusal renders the failure page);
- messages, when they are stored (the session may be loaded for them).

Everything else these steps do is reading request headers and settings, resolving a URL, and
setting headers and attributes; a step that reaches the database anyway fails loudly on the loop
(Django's SynchronousOnlyOperation), not silently blocking. Under WSGI and Django's test Client
(no loop) they are Django's middleware unchanged.

What each step does was read off Django 5.2 and django-csp 4 (both pinned): tests/test_middleware.py
keeps a digest of the source of every step run here, and fails when an upgrade changes one, to be
read again. Measured: docs/performance.md, "REST requests without thread hops".
"""

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.middleware import clickjacking, common, csrf, security

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})  # what CsrfViewMiddleware does not check


class OnTheLoop:
    """`MiddlewareMixin.__acall__`, with each step on the loop unless `request_blocks` or
    `response_blocks` says it may block."""

    get_response: Any
    async_mode: bool
    process_request: Any
    process_response: Any

    def request_blocks(self, request: HttpRequest) -> bool:
        return False

    def response_blocks(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        return False

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        if hasattr(self, "process_request"):
            if self.request_blocks(request):
                response = await sync_to_async(self.process_request, thread_sensitive=True)(request)
            else:
                response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.response_blocks(request, response):
                return await sync_to_async(self.process_response, thread_sensitive=True)(request, response)
            return self.process_response(request, response)
        return response


class SecurityMiddleware(OnTheLoop, security.SecurityMiddleware):
    pass


class SessionMiddleware(OnTheLoop, sessions.SessionMiddleware):
    """Reading the session is lazy (the view's thread loads it when used); saving it blocks."""

    def response_blocks(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class CommonMiddleware(OnTheLoop, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(OnTheLoop, csrf.CsrfViewMiddleware):
    """The secret comes from the cookie; with CSRF_USE_SESSIONS it would come from the session,
    and every step goes to the thread. The check of an unsafe request to a view that is not exempt
    is made in the thread. On the loop, Django calls an async process_view without a hop."""

    def __init__(self, get_response: Any) -> None:
        super().__init__(get_response)
        if self.async_mode:  # MiddlewareMixin's: the chain after it is async
            self.process_view = self._process_view_on_loop  # type: ignore[method-assign,assignment]

    def request_blocks(self, request: HttpRequest) -> bool:
        return bool(settings.CSRF_USE_SESSIONS)

    def response_blocks(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        return bool(settings.CSRF_USE_SESSIONS)

    async def _process_view_on_loop(
        self, request: HttpRequest, callback: Any, callback_args: Any, callback_kwargs: Any
    ) -> HttpResponseBase | None:
        nothing_to_check = (
            getattr(request, "csrf_processing_done", False)
            or getattr(callback, "csrf_exempt", False)  # DRF's views (their own CSRF check)
            or request.method in SAFE_METHODS
        )
        if nothing_to_check and not settings.CSRF_USE_SESSIONS:
            return super().process_view(request, callback, callback_args, callback_kwargs)
        return await sync_to_async(super().process_view, thread_sensitive=True)(
            request, callback, callback_args, callback_kwargs
        )


class AuthenticationMiddleware(OnTheLoop, auth.AuthenticationMiddleware):
    """request.user is lazy: the view's thread reads the user when it is used."""


class MessageMiddleware(OnTheLoop, messages.MessageMiddleware):
    """The storage is lazy; storing messages (only when some were read or added) may load the
    session, so it goes to the thread."""

    def response_blocks(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and bool(storage.used or storage.added_new)


class XFrameOptionsMiddleware(OnTheLoop, clickjacking.XFrameOptionsMiddleware):
    pass
