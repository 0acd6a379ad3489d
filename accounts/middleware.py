"""Who is on a WebSocket: decided once, when it connects.

Browsers authenticate with their session cookie and must send an Origin naming one of
ALLOWED_HOSTS (Channels' origin check), which stops cross-site pages riding on the cookie. Mobile
clients trade their JWT for a single-use ticket over REST and connect to /ws/?ticket=...; the access
token never goes in a URL. Native clients often send no Origin: they may connect without one, but
only with a ticket, which no other site can hold.

This is one layer instead of Channels' stack (origin validator, cookies, session, auth), because a
socket lives for hours and every layer stays on its call stack for all that time, each with its
own copy of the scope: ~5.6 KB a socket, measured with tracemalloc (docs/performance.md). The app gets
one scope copy holding the resolved user and no session: nothing after the handshake needs it.
"""

from importlib import import_module
from urllib.parse import parse_qs, urlparse

from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.security.websocket import AllowedHostsOriginValidator, WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.cookie import parse_cookie

from accounts.models import User
from accounts.services import ws_ticket_redeem
from core.errors import is_outage


@database_sync_to_async
def _active_user(user_id: int) -> User | AnonymousUser:
    return User.objects.filter(pk=user_id, is_active=True).first() or AnonymousUser()


async def _session_user(cookie_header: bytes | None) -> User | AnonymousUser:
    session_key = (
        parse_cookie(cookie_header.decode("latin1")).get(settings.SESSION_COOKIE_NAME) if cookie_header else None
    )
    if not session_key:
        return AnonymousUser()
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return await get_user({"session": session})


class SocketAuthMiddleware:
    def __init__(self, app) -> None:
        self.app = app
        self.origins = AllowedHostsOriginValidator(app)  # used for its valid_origin() only

    async def __call__(self, scope, receive, send):
        headers = dict(scope["headers"])  # the last of repeated headers wins, as in Channels
        origin = headers.get(b"origin")
        ticket = parse_qs(scope["query_string"].decode("latin1")).get("ticket")
        if origin is not None or not ticket:
            try:
                parsed_origin = urlparse(origin.decode("latin1")) if origin is not None else None
            except UnicodeDecodeError:
                parsed_origin = None
            if not self.origins.valid_origin(parsed_origin):
                return await WebsocketDenier()(scope, receive, send)
        try:
            if ticket:
                # A ticket that does not redeem means anonymous, even if a session cookie came along.
                user_id = await ws_ticket_redeem(ticket[0])
                user = await _active_user(user_id) if user_id is not None else AnonymousUser()
            else:
                user = await _session_user(headers.get(b"cookie"))
        except Exception as error:
            if not is_outage(error):
                raise
            # Redis or PostgreSQL is away: who this is cannot be known now. The consumer accepts
            # and closes with 1013 (try again later) rather than leave the handshake to fail.
            return await self.app(dict(scope, user=None, unavailable=True), receive, send)
        return await self.app(dict(scope, user=user), receive, send)
