from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """Parley's user. Custom from the first migration so it can grow without a painful swap."""

    # Privacy: when off, others never see how far this user has read.
    send_read_receipts = models.BooleanField(default=True)

    class Meta(AbstractUser.Meta):
        db_table = "accounts_user"
        swappable = "AUTH_USER_MODEL"
