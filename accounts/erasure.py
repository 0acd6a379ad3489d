"""Erasing an account (GDPR, issue 18; docs/accounts.md "Erasing an account"). One service,
`account_erase`, for the three ways to ask: the account page (password and a confirmation box),
REST `DELETE me/` (password), and the admin action (staff, for anyone).

At once, in one transaction (the request's):
- the account is scrubbed: username `deleted-<id>`, display name "Deleted user", no email, names,
  avatar (its object deleted after commit), groups or permissions; inactive, with an unusable
  password (every session stops working: its auth hash no longer matches), every refresh token
  blacklisted, its single sign-on links removed, every open socket closed (4403);
- it leaves every room (rooms.services.member_erased: hand-over or deletion of rooms it owned)
  and then every workspace (workspaces.services.member_erased: the same hand-over);
- its inbox, notification levels, unsent uploads, data exports (zips deleted) and send keys go;
- the erasure is recorded (`gdpr.erase`: ids, mode and counts, nothing the erasure removed).
After commit, a Celery task (accounts.tasks.erase_account_content) deletes its web sessions,
changes its board comments (boards.comments.comments_erase), and its messages and reactions: in
PostgreSQL, in batches (messaging.services.messages_erase_batch), then in every archived day
(messaging.archive.erase_user), then PostgreSQL again (a day restored meanwhile), as
ERASURE_MESSAGES says: `delete` (tombstones) or `anonymise` (the text stays under "Deleted user").
Each changed message is a numbered change, announced live and returned by sync."""

import logging
import secrets
from importlib import import_module

from django.apps import apps
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

import audit
from accounts import avatars
from accounts.models import User, username_is
from accounts.services import user_credentials_changed
from attachments import binding as attachment_binding
from audit.models import DataExport, Erasure
from boards import comments as board_comments
from core.errors import InvalidInput, NotFound
from e2ee import services as e2ee_services
from messaging import archive
from messaging import services as messaging_services
from messaging.archive_storage import archive_storage
from messaging.models import SentMessageKey
from notifications.models import Notification, RoomSetting
from rooms import services as rooms_services
from rooms.models import Membership
from workspaces import services as workspaces_services

logger = logging.getLogger(__name__)

ERASED_NAME = "Deleted user"


def erased_username(user_id: int) -> str:
    return f"deleted-{user_id}"


def account_erase(*, actor: User, user: User, password: str | None = None, via: str) -> Erasure:
    """Erase `user`'s account. They themselves must give their password; site staff erase anyone
    (the admin action) without it; anyone else is told the account is not found. Erasing an
    erased account only queues its messages' work again when it did not finish."""
    by_staff = actor.pk != user.pk
    if by_staff and not (actor.is_active and actor.is_staff):
        raise NotFound()
    if not by_staff and (not password or not user.check_password(password)):
        raise InvalidInput(
            "Your password is not right.",
            code="wrong_password",
            fields={"password": ["Your password is not right."]},
        )
    # The audit entries of the room changes below are written last (the chain's head is the last
    # lock: docs/audit.md), after every room's and membership's lock.
    with transaction.atomic(), audit.deferred():
        account = User.objects.select_for_update().get(pk=user.pk)
        erasure = Erasure.objects.filter(user=account).first()
        if erasure is not None:
            if erasure.status != Erasure.Status.DONE:
                unfinished = erasure.pk
                transaction.on_commit(lambda: _enqueue(unfinished))
            return erasure
        mode = settings.ERASURE_MESSAGES
        email = account.email
        _scrub(account)
        rooms = _leave_rooms(account)
        counts = {
            "workspaces": workspaces_services.member_erased(user=account, email=email),
            "notifications": Notification.objects.filter(user=account).delete()[0],
            "uploads": attachment_binding.release_unsent(uploader_id=account.pk),
            "exports": _delete_exports(account),
            "devices": e2ee_services.devices_erased(user=account),
        }
        RoomSetting.objects.filter(user=account).delete()
        Notification.objects.filter(actor=account).update(actor=None)  # others' items: "Deleted user"
        SentMessageKey.objects.filter(sender=account).delete()
        erasure = created = Erasure.objects.create(user=account, mode=mode, by_staff=by_staff)
        audit.record(
            action="gdpr.erase",
            # Erasing oneself: the actor is the account as it now is (its username is deleted-<id>).
            actor=actor if by_staff else account,
            target=("user", account.pk),
            after={"via": via, "mode": mode, "rooms": rooms, **counts},
        )
        transaction.on_commit(lambda: _enqueue(created.pk))
    return erasure


def _scrub(account: User) -> None:
    avatar = account.avatar
    account.username = erased_username(account.pk)
    if User.objects.filter(username_is(account.username)).exclude(pk=account.pk).exists():
        account.username += f"-{secrets.token_hex(4)}"  # someone signed up with that very name
    account.email = account.first_name = account.last_name = account.avatar = ""
    account.display_name = ERASED_NAME
    account.is_active = account.is_staff = account.is_superuser = False
    account.send_read_receipts = False
    account.last_login = None
    account.set_unusable_password()
    account.save()
    account.groups.clear()
    account.user_permissions.clear()
    if avatar:
        transaction.on_commit(lambda: avatars.delete(account.pk, avatar))
    outstanding = OutstandingToken.objects.filter(user=account, blacklistedtoken__isnull=True)
    BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
    )
    if apps.is_installed("sso"):  # (issuer, subject) -> this account: a later sign-in must not find it
        apps.get_model("sso", "SsoIdentity").objects.filter(user=account).delete()
    user_credentials_changed(user=account)  # every socket of theirs closes after commit


def _leave_rooms(account: User) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    # Rooms in one order (by id): two erasures lock the rooms they share in the same order.
    for membership in Membership.objects.filter(user=account).select_related("room").order_by("room_id"):
        membership.user = account
        outcome = rooms_services.member_erased(membership=membership, shown_as=ERASED_NAME)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def _delete_exports(account: User) -> int:
    exports = list(DataExport.objects.filter(user=account))
    keys = [export.key for export in exports if export.key]
    DataExport.objects.filter(user=account).delete()

    def delete_zips() -> None:
        for key in keys:
            archive_storage().delete(key)

    if keys:
        transaction.on_commit(delete_zips)
    return len(exports)


def _enqueue(erasure_id: int) -> None:
    from accounts import tasks

    try:
        tasks.erase_account_content.delay(erasure_id)
    except Exception:  # the broker is away: erasing again (admin action) queues it again
        logger.exception("could not queue the content of erasure %s", erasure_id)


def erase_content(erasure_id: int) -> str:
    """The task's work: the erased account's messages and reactions, everywhere. Resumable: a
    changed message no longer matches, so a second run only does what the first did not."""
    erasure = Erasure.objects.get(pk=erasure_id)
    user_id, mode = erasure.user_id, erasure.mode
    try:
        sessions = _delete_sessions(user_id)
        comments = board_comments.comments_erase(user_id=user_id, mode=mode)
        changed = _erase_in_postgresql(user_id, mode)
        days, archived = archive.erase_user(user_id=user_id, mode=mode)
        changed += _erase_in_postgresql(user_id, mode)  # a day restored while the archive was done
    except Exception as error:
        logger.exception("erasure %s failed", erasure_id)
        Erasure.objects.filter(pk=erasure_id).update(
            status=Erasure.Status.FAILED, error=f"{type(error).__name__}: {error!s:.500}"
        )
        return Erasure.Status.FAILED
    with transaction.atomic():
        Erasure.objects.filter(pk=erasure_id).update(
            status=Erasure.Status.DONE,
            messages=changed,
            archived_messages=archived,
            archived_days=days,
            error="",
            finished_at=timezone.now(),
        )
        audit.record(
            action="gdpr.erase_finished",
            actor=None,
            target=("user", user_id),
            after={
                "mode": mode,
                "sessions": sessions,
                "board_comments": comments,
                "messages": changed,
                "archived_messages": archived,
                "archived_days": days,
            },
        )
    return Erasure.Status.DONE


def _delete_sessions(user_id: int) -> int:
    """The account's web sessions, deleted (they stopped working at the erasure: the password's
    hash changed). Sessions are not indexed by user, so the unexpired ones are read, in the
    background, once; only sessions kept in the database can be found this way."""
    if settings.SESSION_ENGINE not in (
        "django.contrib.sessions.backends.db",
        "django.contrib.sessions.backends.cached_db",
    ):
        return 0
    store = import_module(settings.SESSION_ENGINE).SessionStore
    doomed = [
        session.session_key
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator(chunk_size=2000)
        if session.get_decoded().get("_auth_user_id") == str(user_id)
    ]
    for key in doomed:
        store(session_key=key).delete()  # the cache's copy too (cached_db)
    return len(doomed)


def _erase_in_postgresql(user_id: int, mode: str) -> int:
    changed = 0
    for room_id in messaging_services.rooms_to_erase(user_id=user_id):
        while batch := messaging_services.messages_erase_batch(room_id=room_id, user_id=user_id, mode=mode):
            changed += batch
    return changed
