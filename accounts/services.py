import hashlib
import secrets
import unicodedata

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from accounts import avatars
from accounts.models import DISPLAY_NAME_MAX_LENGTH, User
from core import redis_clients
from core.errors import InvalidInput
from core.events import dumps, send_event, user_group
from rooms.payloads import user_payload

_TICKET_PREFIX = "parley:wsticket:"
_REFUSED = {"Cc", "Cs", "Co", "Cn"}
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


def password_change(*, user: User, current_password: str, new_password: str) -> User:
    """A signed-in user's new password (REST): the current one must be right. Django's validators
    judge the new one; every socket of the user closes (user_set_password)."""
    if not user.check_password(current_password):
        raise InvalidInput(
            "Your current password is not right.",
            code="wrong_password",
            fields={"current_password": ["Your current password is not right."]},
        )
    try:
        return user_set_password(user=user, password=new_password)
    except InvalidInput as error:  # named after this call's field
        raise InvalidInput(error.message, fields={"new_password": (error.fields or {}).get("password", [])}) from None


def _clean_display_name(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput(fields={"display_name": ["Must be a string."]})
    name = " ".join(value.split())  # no leading, trailing or repeated whitespace, no line breaks
    if len(name) > DISPLAY_NAME_MAX_LENGTH:
        raise InvalidInput(fields={"display_name": [f"At most {DISPLAY_NAME_MAX_LENGTH} characters."]})
    # No control characters, and no invisible format ones (bidi overrides that flip how a name
    # reads, zero-width spaces), except the joiner that emoji sequences are made of.
    if any(
        unicodedata.category(char) in _REFUSED or (unicodedata.category(char) == "Cf" and char != "\u200d")
        for char in name
    ):
        raise InvalidInput(fields={"display_name": ["Use letters, digits, spaces and punctuation."]})
    return name


def _profile_changed(user: User) -> None:
    """The user's name or picture changed: their own sockets (every process) update the copy of the
    user they keep, so what they send next carries it (messaging.consumers `user_relay`), and their
    pages hear a `user.profile` frame. Others see it on what is sent or loaded from now on."""
    frame = {"type": "user.profile", "user": user_payload(user)}
    profile = {"display_name": user.display_name, "avatar": user.avatar}
    send_event([user_group(user.pk)], {"type": "user.relay", "text": dumps(frame), "profile": profile})


@transaction.atomic
def profile_update(*, user: User, display_name: object) -> User:
    """Set (or, with "", clear) the user's display name."""
    name = _clean_display_name(display_name)
    if name != user.display_name:
        user.display_name = name
        User.objects.filter(pk=user.pk).update(display_name=name)
        _profile_changed(user)
    return user


def email_change(*, user: User, email: object, current_password: str) -> User:
    """A new email address (where password resets go): the current password must be right."""
    if not isinstance(email, str) or not email.strip():
        raise InvalidInput(fields={"email": ["Enter an email address."]})
    if not user.check_password(current_password):
        raise InvalidInput(
            "Your current password is not right.",
            code="wrong_password",
            fields={"current_password": ["Your current password is not right."]},
        )
    email = User.objects.normalize_email(email.strip())
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidInput(fields={"email": ["Enter a valid email address."]}) from None
    User.objects.filter(pk=user.pk).update(email=email)
    user.email = email
    return user


def avatar_set(*, user: User, data: bytes) -> User:
    """A new avatar from an uploaded image (accounts.avatars: checked, squared, resized, stored).
    The image is stored before the user row names it; the one it replaces is deleted after commit."""
    png = avatars.render(data)  # InvalidInput for anything that is not a usable image
    token = avatars.store(user.pk, png)
    try:
        with transaction.atomic():
            old = User.objects.select_for_update().values_list("avatar", flat=True).get(pk=user.pk)
            User.objects.filter(pk=user.pk).update(avatar=token)
            user.avatar = token
            _profile_changed(user)
            if old:
                transaction.on_commit(lambda: avatars.delete(user.pk, old))
    except BaseException:
        avatars.delete(user.pk, token)
        raise
    return user


def avatar_remove(*, user: User) -> User:
    with transaction.atomic():
        old = User.objects.select_for_update().values_list("avatar", flat=True).get(pk=user.pk)
        if old:
            User.objects.filter(pk=user.pk).update(avatar="")
            user.avatar = ""
            _profile_changed(user)
            transaction.on_commit(lambda: avatars.delete(user.pk, old))
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
