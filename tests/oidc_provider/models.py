from django.conf import settings
from django.db import models


class Person(models.Model):
    """What the provider says about a user beyond Django's User: whether their email is verified."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="person")
    email_verified = models.BooleanField(default=True)
    # Some providers put the email in userinfo only, not in the ID token.
    email_in_userinfo_only = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.user_id}: {'verified' if self.email_verified else 'unverified'}"
