import functools
import hashlib
import secrets

import redis
from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import User
from core import aioredis
from core.errors import InvalidInput

_TICKET_PREFIX = "parley:wsticket:"


def user_create(*, username: str, email: str, password: str) -> User:
    user = User(username=username, email=email)
    try:
        password_validation.validate_password(password, user)
    except ValidationError as error:
        raise InvalidInput("Choose a stronger password.", fields={"password": error.messages}) from None
    user.set_password(password)
    try:
        user.full_clean(exclude=["password"])
    except ValidationError as error:
        raise InvalidInput(fields=error.message_dict) from None
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:  # two sign-ups raced for the same name
        raise InvalidInput(fields={"username": ["A user with that username already exists."]}) from None
    return user


def user_update_settings(*, user: User, send_read_receipts: bool | None = None) -> User:
    if send_read_receipts is not None:
        user.send_read_receipts = send_read_receipts
        user.save(update_fields=["send_read_receipts"])
    return user


@functools.cache
def _redis() -> redis.Redis:
    # One client (and connection pool) per process, not a new connection per call.
    return redis.Redis.from_url(settings.REDIS_URL)


def _ticket_key(ticket: str) -> str:
    # Only a hash is stored, so a Redis dump never holds a usable ticket.
    return _TICKET_PREFIX + hashlib.sha256(ticket.encode()).hexdigest()


def ws_ticket_issue(*, user: User) -> tuple[str, int]:
    """A random single-use ticket that lets `user` open one WebSocket within the TTL."""
    ticket = secrets.token_urlsafe(32)
    ttl = settings.WS_TICKET_TTL_SECONDS
    _redis().set(_ticket_key(ticket), user.pk, ex=ttl, nx=True)
    return ticket, ttl


async def ws_ticket_redeem(ticket: str) -> int | None:
    """The user id the ticket was issued to, or None. GETDEL makes a ticket work only once."""
    if not ticket or len(ticket) > 128:
        return None
    user_id = await aioredis.client().getdel(_ticket_key(ticket))
    return int(user_id) if user_id is not None else None
