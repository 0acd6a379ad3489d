"""Single sign-on's tables: the identity providers (configured by operators in admin) and the
identities they vouched for (which Parley user an (issuer, subject) pair is)."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from sso.secrets import EncryptedSecretField

DEFAULT_SCOPES = "openid email profile"


class SsoProvider(models.Model):
    """An OpenID Connect provider people may sign in with: "Sign in with <name>" on the sign-in
    page. Its endpoints come from the issuer's discovery document (sso.oidc.discover)."""

    slug = models.SlugField(max_length=50, unique=True, help_text="In the sign-in URL: /sso/<slug>/login/")
    name = models.CharField(max_length=80, help_text='Shown as "Sign in with <name>"')
    # The `iss` the provider's ID tokens carry, exactly (its discovery document is under it).
    issuer = models.URLField(max_length=255)
    client_id = models.CharField(max_length=255)
    # Encrypted at rest under a key derived from SECRET_KEY (sso.secrets; the token request needs
    # it in clear, so Parley decrypts it); never shown again in admin, never logged or audited.
    client_secret = EncryptedSecretField()
    scopes = models.CharField(max_length=255, default=DEFAULT_SCOPES)
    # Lower-case email domains whose people may sign in (exact: "example.com" does not admit
    # "mail.example.com"). Never empty: a provider admits nobody by default.
    allowed_domains = ArrayField(models.CharField(max_length=253))
    enabled = models.BooleanField(default=True)
    # An identity seen for the first time whose email belongs to an existing Parley account is
    # linked to it only when this is on AND the provider says email_verified: true (docs/sso.md).
    link_by_verified_email = models.BooleanField(default=False)
    # People it creates just in time, or links, join this workspace as members (besides the default
    # workspace every account joins); none: the default workspace only. A workspace's own sign-in
    # page listing its providers is future work (docs/sso.md).
    workspace = models.ForeignKey(
        "workspaces.Workspace",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="sso_providers",
        help_text="People it signs in for the first time join this workspace as members.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(allowed_domains__len__gt=0), name="sso_provider_has_domains"),
        ]

    def __str__(self) -> str:
        return self.name


class SsoIdentity(models.Model):
    """One person at one issuer (`sub` is unique and stable per issuer, OpenID Connect Core 2): the
    only thing a returning sign-in is matched by. The same issuer configured twice (two clients)
    finds the same identity."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identities")
    provider = models.ForeignKey(SsoProvider, on_delete=models.SET_NULL, null=True, related_name="identities")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    email = models.CharField(max_length=254, blank=True, default="")  # as last asserted, for operators
    created_at = models.DateTimeField(auto_now_add=True)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "SSO identities"
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_issuer_subject_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
