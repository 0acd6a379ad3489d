"""Operators configure identity providers here; every change goes through sso.services (audited,
never the client secret). Identities are shown read-only."""

import ipaddress
import re
from typing import Any, cast
from urllib.parse import urlsplit

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import User
from core.admin import ReadOnlyAdmin, ServiceAdmin
from sso import services
from sso.models import SsoIdentity, SsoProvider

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SsoProviderForm(forms.ModelForm):
    issuer = forms.URLField(
        max_length=255,
        assume_scheme="https",
        help_text="Exactly the `iss` of its ID tokens, e.g. https://login.example.com/realms/acme. Parley "
        "reads <issuer>/.well-known/openid-configuration. Register <this site>/sso/callback/ there as the "
        "redirect URI.",
    )
    client_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the current secret.",
    )

    class Meta:
        model = SsoProvider
        fields = [
            "name",
            "slug",
            "enabled",
            "issuer",
            "client_id",
            "client_secret",
            "scopes",
            "allowed_domains",
            "link_by_verified_email",
            "workspace",
        ]
        help_texts = {
            "allowed_domains": "Comma-separated email domains whose people may sign in, e.g. example.com,example.org.",
        }

    def clean_issuer(self) -> str:
        issuer = cast(str, self.cleaned_data["issuer"])  # as given: it must equal the tokens' `iss`
        parts = urlsplit(issuer)
        if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname or "")):
            raise forms.ValidationError("Use an https:// issuer (plain http only on this machine).")
        return issuer

    def clean_allowed_domains(self) -> list[str]:
        domains = [domain.strip().lower() for domain in self.cleaned_data["allowed_domains"] if domain.strip()]
        if not domains:
            raise forms.ValidationError("Name at least one email domain.")
        bad = [domain for domain in domains if not _DOMAIN.match(domain)]
        if bad:
            raise forms.ValidationError(f"Not a domain: {', '.join(bad)}")
        return domains

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not self.instance.pk and not data.get("client_secret"):
            self.add_error("client_secret", "A new provider needs its client secret.")
        return data

    def save(self, commit: bool = True) -> SsoProvider:
        secret = self.cleaned_data.get("client_secret")
        provider = super().save(commit=False)
        if not secret:  # kept: the form never shows it
            provider.client_secret = SsoProvider.objects.get(pk=provider.pk).client_secret
        return provider


@admin.register(SsoProvider)
class SsoProviderAdmin(ServiceAdmin):
    form = SsoProviderForm
    list_display = ["name", "slug", "issuer", "workspace", "enabled", "domains"]
    list_filter = ["enabled"]
    list_select_related = ["workspace"]
    search_fields = ["name", "slug", "issuer"]
    prepopulated_fields = {"slug": ["name"]}

    @admin.display(description="allowed domains")
    def domains(self, obj: SsoProvider) -> str:
        return ", ".join(obj.allowed_domains)

    def save_model(self, request: HttpRequest, obj: SsoProvider, form: Any, change: bool) -> None:
        secret_changed = bool(form.cleaned_data.get("client_secret"))
        self.write(
            request, lambda: services.provider_save(actor=request.user, provider=obj, secret_changed=secret_changed)
        )

    def delete_model(self, request: HttpRequest, obj: SsoProvider) -> None:
        self.write(request, lambda: services.provider_delete(actor=cast(User, request.user), provider=obj))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[SsoProvider]) -> None:
        for provider in queryset:
            self.delete_model(request, provider)


@admin.register(SsoIdentity)
class SsoIdentityAdmin(ServiceAdmin, ReadOnlyAdmin):
    """Read-only, but an identity may be deleted (unlinked, through sso.services, audited)."""

    list_display = ["user", "provider", "issuer", "subject", "email", "last_sign_in_at"]
    list_filter = ["provider"]
    search_fields = ["user__username", "email", "subject"]
    list_select_related = ["user", "provider"]
    fields = readonly_fields = ("user", "provider", "issuer", "subject", "email", "created_at", "last_sign_in_at")

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    def delete_model(self, request: HttpRequest, obj: SsoIdentity) -> None:
        self.write(request, lambda: services.identity_unlink(actor=request.user, identity=obj))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[SsoIdentity]) -> None:
        for identity in queryset:
            self.delete_model(request, identity)
