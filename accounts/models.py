from typing import ClassVar

from django.contrib.auth.models import AbstractUser
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Lower


def username_is(username: str) -> Q:
    """Matches the user whose name is `username` in any case: names are unique case-insensitively
    (lowered by PostgreSQL on both sides, so the unique index on LOWER(username) is used)."""
    return Q(username__lower=Lower(Value(username)))


models.CharField.register_lookup(Lower)


DISPLAY_NAME_MAX_LENGTH = 64


class UserManager(DjangoUserManager["User"]):
    def get_by_natural_key(self, username: str | None) -> "User":
        # Sign-in (sessions and JWT alike) accepts a name in any case.
        return self.get(username_is(username or ""))


class User(AbstractUser):
    """Parley's user. Custom from the first migration so it can grow without a painful swap."""

    # Privacy: when off, others never see how far this user has read.
    send_read_receipts = models.BooleanField(default=True)
    # What others see instead of the username when set (accounts.services.profile_update); the
    # username stays the unique handle (sign-in, @mentions, invitations).
    display_name = models.CharField(max_length=DISPLAY_NAME_MAX_LENGTH, blank=True, default="")
    # The current avatar's key in the media store (accounts.avatars), "" for none: a random token,
    # so its URL (`/avatars/<id>/<token>.png`) changes with every upload and can be cached forever.
    avatar = models.CharField(max_length=32, blank=True, default="")
    # When the email address last changed (accounts.services.email_change_confirm): a confirmation
    # link issued before it no longer works, so each link works once.
    email_changed_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[UserManager] = UserManager()

    class Meta(AbstractUser.Meta):  # type: ignore[name-defined]  # django-stubs declares no AbstractUser.Meta
        db_table = "accounts_user"
        swappable = "AUTH_USER_MODEL"
        constraints = [
            # "ANA" must not sign up next to "ana": one name, one person, whatever the case.
            models.UniqueConstraint(
                Lower("username"),
                name="user_username_lower_unique",
                violation_error_message="A user with that username already exists.",
            )
        ]
