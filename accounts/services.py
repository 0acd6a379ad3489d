import hashlib
import secrets

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import User
from core import redis_clients
from core.errors import InvalidInput
from core.events import send_event, user_group

_TICKET_PREFIX = "parley:wsticket:"
_TAKEN = "A user with that username already exists."


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
        fields = error.message_dict
        # The case-insensitive name constraint reports itself as a whole-form error.
        if _TAKEN in fields.pop("__all__", []):
            fields.setdefault("username", []).append(_TAKEN)
        raise InvalidInput(fields=fields) from None
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:  # two sign-ups raced for the same name
        raise InvalidInput(fields={"username": [_TAKEN]}) from None
    return user


def user_credentials_changed(*, user: User) -> None:
    """The user signed out, was deactivated or got a new password: every socket they have open,
    in every server process, is closed (code 4403) after commit. Sockets that come back must
    authenticate again, which an inactive user or a stale session cannot."""
    send_event([user_group(user.pk)], {"type": "user.revoked"})


@transaction.atomic
def user_set_active(*, user: User, active: bool) -> User:
    User.objects.filter(pk=user.pk).update(is_active=active)
    user.is_active = active
    if not active:
        user_credentials_changed(user=user)
    return user


@transaction.atomic
def user_set_password(*, user: User, password: str) -> User:
    try:
        password_validation.validate_password(password, user)
    except ValidationError as error:
        raise InvalidInput("Choose a stronger password.", fields={"password": error.messages}) from None
    user.set_password(password)
    user.save(update_fields=["password"])
    user_credentials_changed(user=user)
    return user


def user_update_settings(*, user: User, send_read_receipts: bool | None = None) -> User:
    if send_read_receipts is not None:
        user.send_read_receipts = send_read_receipts
        user.save(update_fields=["send_read_receipts"])
    return user


def _ticket_key(ticket: str) -> str:
    # Only a hash is stored, so a Redis dump never holds a usable ticket.
    return _TICKET_PREFIX + hashlib.sha256(ticket.encode()).hexdigest()


def ws_ticket_issue(*, user: User) -> tuple[str, int]:
    """A random single-use ticket that lets `user` open one WebSocket within the TTL."""
    ticket = secrets.token_urlsafe(32)
    ttl = settings.WS_TICKET_TTL_SECONDS
    redis_clients.client().set(_ticket_key(ticket), user.pk, ex=ttl, nx=True)
    return ticket, ttl


async def ws_ticket_redeem(ticket: str) -> int | None:
    """The user id the ticket was issued to, or None. GETDEL makes a ticket work only once."""
    if not ticket or len(ticket) > 128:
        return None
    user_id = await redis_clients.aclient().getdel(_ticket_key(ticket))
    return int(user_id) if user_id is not None else None
