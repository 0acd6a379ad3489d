import hashlib
import logging
import secrets
import time
import unicodedata

from django.conf import settings
from django.contrib.auth import password_validation
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

import audit
from accounts import avatars
from accounts.models import DISPLAY_NAME_MAX_LENGTH, User
from core import redis_clients
from core.errors import ApplicationError, InvalidInput, Unavailable
from core.events import dumps, room_group, send_event, user_group
from core.throttles import address_ident, mail_budgets_take
from rooms.models import Membership
from rooms.payloads import user_payload

logger = logging.getLogger(__name__)

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
    pages hear a `user.profile` frame. So do the pages of everyone sharing a room with them (sent to
    each of their rooms, once per socket or stream), which redraw the name wherever it is shown."""
    text = dumps({"type": "user.profile", "user": user_payload(user)})
    profile = {"display_name": user.display_name, "avatar": user.avatar}
    send_event([user_group(user.pk)], {"type": "user.relay", "text": text, "profile": profile})
    rooms = [str(room) for room in Membership.objects.filter(user=user).values_list("room_id", flat=True)]
    if rooms:
        send_event([room_group(room) for room in rooms], {"type": "user.profile", "user": user.pk, "text": text})


@transaction.atomic
def profile_update(*, user: User, display_name: object) -> User:
    """Set (or, with "", clear) the user's display name."""
    name = _clean_display_name(display_name)
    if name != user.display_name:
        user.display_name = name
        User.objects.filter(pk=user.pk).update(display_name=name)
        _profile_changed(user)
    return user


EMAIL_CHANGE_SALT = "accounts.email_change"
_LINK_INVALID = "This link is not valid. Ask for a new one from your account page."


def _link_error(message: str, code: str, status: int = 400) -> ApplicationError:
    return ApplicationError(message, code=code, status=status)


def email_change_request(*, user: User, email: object, current_password: str, site: str) -> str:
    """Ask for a new email address (where password resets go); nothing changes yet. The current
    password must be right. A signed link that works for EMAIL_CHANGE_TIMEOUT seconds, once, is
    mailed to the new address (following it applies the change: `email_change_confirm`), and the
    old address is told, so that a change its owner did not ask for is noticed. `site`: the scheme
    and host the link starts with. Returns the new address. At most THROTTLE_EMAIL_CHANGE_USER asks
    per user and THROTTLE_EMAIL_CHANGE_ADDRESS per new address (429 `email_rate_limited`)."""
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
    if email.lower() == (user.email or "").lower():
        raise InvalidInput(
            "That is your address already.", code="email_unchanged", fields={"email": ["That is your address already."]}
        )
    # Both mails count: the asker's budget and the new address's (core.throttles).
    mail_budgets_take(("email_change_user", str(user.pk)), ("email_change_address", address_ident(email)))
    token = signing.dumps({"user": user.pk, "email": email, "at": time.time()}, salt=EMAIL_CHANGE_SALT)
    context = {
        "user": user,
        "email": email,
        "link": site.rstrip("/") + reverse("email-change-confirm", kwargs={"token": token}),
        "hours": max(1, settings.EMAIL_CHANGE_TIMEOUT // 3600),
    }
    mails = [
        EmailMessage(
            render_to_string("accounts/email_change_subject.txt", context).strip(),
            render_to_string("accounts/email_change_email.txt", context),
            to=[email],
        )
    ]
    if user.email:
        mails.append(
            EmailMessage(
                render_to_string("accounts/email_change_notice_subject.txt", context).strip(),
                render_to_string("accounts/email_change_notice_email.txt", context),
                to=[user.email],
            )
        )
    try:
        get_connection().send_messages(mails)
    except Exception as error:  # SMTP away or refusing: say so, nothing was changed
        logger.warning("could not send the email change mails: %s", error)
        raise Unavailable("The email could not be sent. Please try again later.", code="email_unavailable") from None
    return email


def _email_change_read(token: object, *, lock: bool) -> tuple[User, str]:
    """The user and the new address a confirmation link names, or the link's error: expired,
    used (the address changed since it was issued, through it or a newer one) or not valid."""
    if not isinstance(token, str) or not token or len(token) > 1000:
        raise _link_error(_LINK_INVALID, "email_link_invalid")
    try:
        data = signing.loads(token, salt=EMAIL_CHANGE_SALT, max_age=settings.EMAIL_CHANGE_TIMEOUT)
    except signing.SignatureExpired:
        raise _link_error(
            "This link has expired. Ask for a new one from your account page.", "email_link_expired"
        ) from None
    except signing.BadSignature:
        raise _link_error(_LINK_INVALID, "email_link_invalid") from None
    shape = isinstance(data, dict) and isinstance(data.get("user"), int) and isinstance(data.get("email"), str)
    if not shape or not isinstance(data.get("at"), float):
        raise _link_error(_LINK_INVALID, "email_link_invalid")
    users = User.objects.filter(pk=int(data["user"]), is_active=True)
    user = (users.select_for_update() if lock else users).first()
    if user is None:
        raise _link_error(_LINK_INVALID, "email_link_invalid")
    if user.email_changed_at is not None and user.email_changed_at.timestamp() >= data["at"]:
        raise _link_error("This link was used already.", "email_link_used", status=409)
    return user, data["email"]


def email_change_pending(*, token: object) -> tuple[User, str]:
    """What a confirmation link would do (the page that asks before applying it): its user and
    new address, or the error `email_change_confirm` would give."""
    return _email_change_read(token, lock=False)


@transaction.atomic
def email_change_confirm(*, token: object) -> User:
    """Apply the new address a confirmation link names (mailed by `email_change_request`). It
    works once: the change voids it and every link issued before (409 `email_link_used`); after
    EMAIL_CHANGE_TIMEOUT seconds, 400 `email_link_expired`; anything else, 400 `email_link_invalid`."""
    user, email = _email_change_read(token, lock=True)  # the row lock: two clicks apply it once
    user.email, user.email_changed_at = email, timezone.now()
    User.objects.filter(pk=user.pk).update(email=user.email, email_changed_at=user.email_changed_at)
    audit.record(action="user.email_change", actor=user, target=user)
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


def _new_ticket() -> tuple[str, str, int]:
    ticket = secrets.token_urlsafe(32)
    return ticket, _ticket_key(ticket), settings.WS_TICKET_TTL_SECONDS


def ws_ticket_issue(*, user: User) -> tuple[str, int]:
    """A random single-use ticket that lets `user` open one WebSocket within the TTL."""
    ticket, key, ttl = _new_ticket()
    redis_clients.client().set(key, user.pk, ex=ttl, nx=True)
    return ticket, ttl


async def ws_ticket_aissue(*, user: User) -> tuple[str, int]:
    """`ws_ticket_issue` on the event loop (the REST view's Bearer path, accounts.api)."""
    ticket, key, ttl = _new_ticket()
    await redis_clients.aclient().set(key, user.pk, ex=ttl, nx=True)
    return ticket, ttl


async def ws_ticket_redeem(ticket: str) -> int | None:
    """The user id the ticket was issued to, or None. GETDEL makes a ticket work only once."""
    if not ticket or len(ticket) > 128:
        return None
    user_id = await redis_clients.aclient().getdel(_ticket_key(ticket))
    return int(user_id) if user_id is not None else None
