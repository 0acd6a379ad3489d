"""Providers' client secrets at rest: encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from
`cryptography`, already a dependency) under a key derived from SECRET_KEY, so a copy of the
database (a backup, a replica, a dump handed to support) does not hold usable secrets.

The token request needs the secret in clear, so Parley must be able to decrypt it: this protects
the database apart from the settings, not against someone who has both. docs/sso.md."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

PREFIX = "fernet:"  # marks an encrypted value; anything else is a value stored before encryption
_CONTEXT = b"parley.sso.client_secret:"


def _fernet(secret_key: str) -> Fernet:
    # SECRET_KEY is long and random (settings refuse a short one); one SHA-256 with a context label
    # gives a key for this use only (a key used elsewhere, e.g. signing, is not reused as is).
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(_CONTEXT + secret_key.encode()).digest()))


def _keys() -> MultiFernet:
    """SECRET_KEY's key first (encrypts), then SECRET_KEY_FALLBACKS' (still decrypt while rotating)."""
    return MultiFernet([_fernet(key) for key in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)])


def encrypt(value: str) -> str:
    return PREFIX + _keys().encrypt(value.encode()).decode()


def decrypt(stored: str) -> str:
    """The secret; a value stored before encryption as it is. A value no key opens (SECRET_KEY
    changed without keeping the old one in SECRET_KEY_FALLBACKS) is an empty secret: the provider
    then refuses the token request, and an operator enters the secret again in admin."""
    if not stored.startswith(PREFIX):
        return stored
    try:
        return _keys().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        return ""


class EncryptedSecretField(models.TextField):
    """A text column that holds `encrypt(value)`; Python code sees the clear value. Saving again
    (admin) re-encrypts under the current SECRET_KEY."""

    def from_db_value(self, value, expression, connection):
        return value if value is None else decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return value if value is None or value == "" else encrypt(str(value))
