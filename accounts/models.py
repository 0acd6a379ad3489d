from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """Parley's user. Custom from the first migration so it can grow without a painful swap."""

    class Meta(AbstractUser.Meta):
        db_table = "accounts_user"
        swappable = "AUTH_USER_MODEL"
