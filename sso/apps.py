from django.apps import AppConfig


class SsoConfig(AppConfig):
    """Single sign-on with OpenID Connect (issue 18, docs/sso.md): one SsoProvider row per identity
    provider, users created just in time and linked by (issuer, subject)."""

    name = "sso"
    verbose_name = "Single sign-on"
    default_auto_field = "django.db.models.BigAutoField"
