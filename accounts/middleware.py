"""WebSocket authentication for mobile clients: a single-use ticket in the query string.

Browsers authenticate with their session cookie (AuthMiddlewareStack). Mobile clients trade their
JWT for a ticket over REST and connect to /ws/?ticket=...; the access token never goes in a URL.
"""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.security.websocket import AllowedHostsOriginValidator
from django.contrib.auth.models import AnonymousUser

from accounts.models import User
from accounts.services import ws_ticket_redeem


@database_sync_to_async
def _active_user(user_id: int) -> User | AnonymousUser:
    return User.objects.filter(pk=user_id, is_active=True).first() or AnonymousUser()


class TicketAuthMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        tickets = query.get("ticket")
        if tickets:
            # A ticket that does not redeem means anonymous, even if a session cookie came along.
            user_id = await ws_ticket_redeem(tickets[0])
            user = await _active_user(user_id) if user_id is not None else AnonymousUser()
            scope = dict(scope, user=user)
        return await self.app(scope, receive, send)


def _has_ticket(scope) -> bool:
    return b"ticket=" in scope.get("query_string", b"")


class OriginOrTicketValidator:
    """Browsers always send Origin, and it must name one of ALLOWED_HOSTS (Channels'
    AllowedHostsOriginValidator), which stops cross-site pages riding on the session cookie.
    Native clients often send no Origin; they may connect without one, but only with a ticket,
    which no other site can hold."""

    def __init__(self, app) -> None:
        self.app = app
        self.validated = AllowedHostsOriginValidator(app)

    async def __call__(self, scope, receive, send):
        has_origin = any(name == b"origin" for name, _ in scope.get("headers", []))
        if not has_origin and _has_ticket(scope):
            return await self.app(scope, receive, send)
        return await self.validated(scope, receive, send)
