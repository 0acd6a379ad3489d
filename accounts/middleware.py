"""Who is on a WebSocket: decided once, when it connects.

Browsers authenticate with their session cookie and must send an Origin naming one of
ALLOWED_HOSTS (Channels' origin check), which stops cross-site pages riding on the cookie. Mobile
clients send their JWT access token in the handshake's `Authorization: Bearer` header, checked as
the REST API checks it; or, where a client cannot set headers on a WebSocket, they trade it for a
single-use ticket over REST and connect to /ws/?ticket=... Either way the access token never goes
in a URL. Native clients often send no Origin: they may connect without one, but only with a
ticket or a token, which no other site can hold (a page cannot set a socket's headers).

This is one layer instead of Channels' stack (origin validator, cookies, session, auth), because a
socket lives for hours and every layer stays on its call stack for all that time, each with its
own copy of the scope: ~5.6 KB a socket, measured with tracemalloc (docs/performance.md). The app gets
one scope copy holding the resolved user and no session: nothing after the handshake needs it.
"""

import functools
from importlib import import_module
from urllib.parse import parse_qs, urlparse

from channels.auth import get_user
from channels.security.websocket import AllowedHostsOriginValidator, WebsocketDenier
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.http.cookie import parse_cookie
from django.utils.crypto import constant_time_compare
from django.utils.module_loading import import_string
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.utils import get_md5_hash_password

from accounts.models import User
from accounts.services import ws_ticket_redeem
from audit.context import bind_socket_client
from core import asyncdb
from core.errors import is_outage
from core.loops import per_loop

_FIELDS = [field.attname for field in User._meta.concrete_fields]
_ACTIVE_USERS = "SELECT {} FROM {} WHERE {} = ANY(%s) AND is_active".format(
    ", ".join(f'"{field.column}"' for field in User._meta.concrete_fields),
    User._meta.db_table,
    User._meta.pk.column,
)
_active_users = per_loop(lambda: asyncdb.Lookups(_ACTIVE_USERS, User._meta.pk.column))


async def _active_user(user_id: int) -> User | AnonymousUser:
    """The active user with this id, read on the loop's own connection (core.asyncdb: no thread
    hop, no query building; a connection storm redeems thousands of tickets a second), one
    statement for the sockets that connect together (asyncdb.Lookups)."""
    rows = await _active_users().get(user_id)
    if not rows:
        return AnonymousUser()
    return User.from_db("default", _FIELDS, [rows[0][field.column] for field in User._meta.concrete_fields])


_jwt = JWTAuthentication()


def bearer_token(authorization: bytes | None) -> bytes | None:
    """The token of an `Authorization: Bearer <token>` header (simplejwt's parsing), b"" for a
    malformed one, None for none or another scheme (a browser behind HTTP Basic auth sends its
    Basic credentials with the handshake: that socket goes on to its session cookie)."""
    if authorization is None:
        return None
    try:
        return _jwt.get_raw_token(authorization)
    except AuthenticationFailed:
        return b""


async def bearer_user(raw_token: bytes) -> User | AnonymousUser:
    """The user of an access token, with the REST API's checks (simplejwt's JWTAuthentication:
    signature, expiry and token type; a user by the token's id; an active user; the password hash
    when CHECK_REVOKE_TOKEN is on), the user read as a ticket's is (one statement on the loop for
    the sockets that connect together)."""
    try:
        token = _jwt.get_validated_token(raw_token)
        user_id = int(token[jwt_settings.USER_ID_CLAIM])
    except (AuthenticationFailed, KeyError, TypeError, ValueError):
        return AnonymousUser()
    user = await _active_user(user_id)
    if (
        jwt_settings.CHECK_REVOKE_TOKEN
        and isinstance(user, User)
        and token.get(jwt_settings.REVOKE_TOKEN_CLAIM) != get_md5_hash_password(user.password)
    ):
        return AnonymousUser()
    return user


async def _session_user(cookie_header: bytes | None) -> User | AnonymousUser:
    session_key = (
        parse_cookie(cookie_header.decode("latin1")).get(settings.SESSION_COOKIE_NAME) if cookie_header else None
    )
    if not session_key:
        return AnonymousUser()
    if settings.SESSION_ENGINE != "django.contrib.sessions.backends.db":
        session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        return await get_user({"session": session})
    return await _db_session_user(session_key)


_SESSIONS = "SELECT session_key, session_data FROM django_session WHERE session_key = ANY(%s) AND expire_date > now()"
_sessions = per_loop(lambda: asyncdb.Lookups(_SESSIONS, "session_key"))


@functools.cache
def _model_backends() -> frozenset[str]:
    """The configured backends whose get_user is ModelBackend's (an active user by id)."""
    return frozenset(
        path for path in settings.AUTHENTICATION_BACKENDS if import_string(path).get_user is ModelBackend.get_user
    )


async def _db_session_user(session_key: str) -> User | AnonymousUser:
    """django.contrib.auth.get_user for the database session engine, on the loop's own connection
    (core.asyncdb: two small reads, no thread hop, no ORM, each shared with the sockets that
    connect together). The same checks: an unexpired
    session, a configured backend, an active user, and the session's hash of the password (a
    changed password signs every session out; SECRET_KEY_FALLBACKS verify too, as in Django). A
    backend of another kind goes the ORM way (Channels' get_user)."""
    if len(session_key) > 64:
        return AnonymousUser()
    rows = await _sessions().get(session_key)
    if not rows:
        return AnonymousUser()
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    data = session.decode(rows[0]["session_data"])
    backend = data.get(BACKEND_SESSION_KEY)
    if backend not in settings.AUTHENTICATION_BACKENDS:
        return AnonymousUser()
    if backend not in _model_backends():
        return await get_user({"session": session})
    try:
        user_id = User._meta.pk.to_python(data[SESSION_KEY])
    except (KeyError, ValidationError):
        return AnonymousUser()
    user = await _active_user(user_id)
    session_hash = data.get(HASH_SESSION_KEY)
    if not session_hash or isinstance(user, AnonymousUser):
        return AnonymousUser()
    if constant_time_compare(session_hash, user.get_session_auth_hash()) or any(
        constant_time_compare(session_hash, fallback) for fallback in user.get_session_auth_fallback_hash()
    ):
        return user
    return AnonymousUser()


class SocketAuthMiddleware:
    def __init__(self, app) -> None:
        self.app = app
        self.origins = AllowedHostsOriginValidator(app)  # used for its valid_origin() only

    async def __call__(self, scope, receive, send):
        app_scope = await self.authenticate(scope)
        if app_scope is None:
            return await WebsocketDenier()(scope, receive, send)
        return await self.app(app_scope, receive, send)

    async def authenticate(self, scope) -> dict | None:
        """The app's scope (a copy holding the resolved user), or None to refuse the socket. A
        coroutine of its own, so that what it reads (the headers as a dict, the Origin, the
        ticket) is not kept on the socket's stack for the socket's life."""
        bind_socket_client(scope)  # this socket's address, for the audit entries its frames cause
        headers = dict(scope["headers"])  # the last of repeated headers wins, as in Channels
        origin = headers.get(b"origin")
        ticket = parse_qs(scope["query_string"].decode("latin1")).get("ticket")
        bearer = bearer_token(headers.get(b"authorization")) if not ticket else None
        if origin is not None or not (ticket or bearer is not None):
            try:
                parsed_origin = urlparse(origin.decode("latin1")) if origin is not None else None
            except UnicodeDecodeError:
                parsed_origin = None
            if not self.origins.valid_origin(parsed_origin):
                return None
        try:
            if ticket:
                # A ticket that does not redeem means anonymous, even if a session cookie came along.
                user_id = await ws_ticket_redeem(ticket[0])
                user = await _active_user(user_id) if user_id is not None else AnonymousUser()
            elif bearer is not None:
                # A token that does not check out means anonymous too, whatever cookie came along.
                user = await bearer_user(bearer)
            else:
                user = await _session_user(headers.get(b"cookie"))
        except Exception as error:
            if not is_outage(error):
                raise
            # Redis or PostgreSQL is away: who this is cannot be known now. The consumer accepts
            # and closes with 1013 (try again later) rather than leave the handshake to fail.
            return dict(scope, user=None, unavailable=True)
        return dict(scope, user=user)
