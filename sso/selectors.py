"""Single sign-on's reads. Disabled providers are "not found" everywhere people meet them."""

from django.db.models import QuerySet

from sso.models import SsoProvider


def providers_for_sign_in_page() -> QuerySet[SsoProvider]:
    """The "Sign in with …" buttons of the main sign-in page: every enabled provider (a workspace's
    own page lists only its own: providers_for_workspace)."""
    return SsoProvider.objects.filter(enabled=True).only("slug", "name").order_by("name")


def provider_for_sign_in(slug: str) -> SsoProvider | None:
    return SsoProvider.objects.filter(slug=slug, enabled=True).first()


def provider_by_id(provider_id: int) -> SsoProvider | None:
    return SsoProvider.objects.filter(pk=provider_id, enabled=True).first()


def providers_for_workspace(*, workspace_slug: str) -> QuerySet[SsoProvider]:
    """A workspace's own sign-in page's buttons: its enabled providers (by the workspace's slug)."""
    return (
        SsoProvider.objects.filter(enabled=True, workspace__slug=workspace_slug)
        .select_related("workspace")
        .only("slug", "name", "workspace__name", "workspace__slug")
        .order_by("name")
    )
