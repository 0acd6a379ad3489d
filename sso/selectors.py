"""Single sign-on's reads. Disabled providers are "not found" everywhere people meet them."""

from django.db.models import QuerySet

from sso.models import SsoProvider


def providers_for_sign_in_page() -> QuerySet[SsoProvider]:
    """The "Sign in with …" buttons. Per workspace once workspaces exist (a workspace's sign-in page
    lists its own; docs/sso.md)."""
    return SsoProvider.objects.filter(enabled=True).only("slug", "name").order_by("name")


def provider_for_sign_in(slug: str) -> SsoProvider | None:
    return SsoProvider.objects.filter(slug=slug, enabled=True).first()


def provider_by_id(provider_id: int) -> SsoProvider | None:
    return SsoProvider.objects.filter(pk=provider_id, enabled=True).first()
