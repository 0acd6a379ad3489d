"""Single sign-on leftovers of issue 18 (docs/sso.md): client secrets encrypted at rest, and a
workspace's own sign-in page."""

import pytest
from django.db import connection
from django.test import Client, override_settings

from sso.models import SsoProvider
from workspaces.services import workspace_create

pytestmark = pytest.mark.django_db


def provider(slug: str, **extra) -> SsoProvider:
    return SsoProvider.objects.create(
        slug=slug,
        name=slug.title(),
        issuer=f"https://{slug}.example.com",
        client_id="parley",
        client_secret="s3cret-value",
        allowed_domains=["example.com"],
        **extra,
    )


def stored(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_secret FROM sso_ssoprovider WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_client_secrets_are_encrypted_at_rest_and_survive_a_key_rotation(settings):
    acme = provider("acme")
    raw = stored(acme.pk)
    assert raw.startswith("fernet:") and "s3cret" not in raw
    assert SsoProvider.objects.get(pk=acme.pk).client_secret == "s3cret-value"
    old = settings.SECRET_KEY
    with override_settings(SECRET_KEY=old + "-rotated", SECRET_KEY_FALLBACKS=[old]):
        assert SsoProvider.objects.get(pk=acme.pk).client_secret == "s3cret-value"  # the old key still opens it
        again = SsoProvider.objects.get(pk=acme.pk)
        again.save()  # re-encrypted under the new key
        assert stored(acme.pk) != raw
    with override_settings(SECRET_KEY=old + "-rotated", SECRET_KEY_FALLBACKS=[]):
        assert SsoProvider.objects.get(pk=acme.pk).client_secret == "s3cret-value"
    # Under a key that never saw it, a secret reads as empty (the provider then refuses: enter it again).
    assert SsoProvider.objects.get(pk=acme.pk).client_secret == ""
    # A value stored in clear before the migration is read as it is.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE sso_ssoprovider SET client_secret = 'legacy' WHERE id = %s", [acme.pk])
    assert SsoProvider.objects.get(pk=acme.pk).client_secret == "legacy"


def test_a_workspace_has_its_own_sign_in_page_with_only_its_providers(make_user):
    acme = workspace_create(creator=make_user("ana"), name="Acme").workspace
    workspace_create(creator=make_user("cid"), name="Globex")
    provider("acme-okta", workspace=acme)
    provider("acme-old", workspace=acme, enabled=False)
    provider("everyone")  # no workspace: the main sign-in page only
    page = Client().get("/w/acme/sign-in/")
    html = page.content.decode()
    assert page.status_code == 200 and "Sign in to Acme" in html
    assert 'href="/sso/acme-okta/login/?next=/workspaces/acme/members/"' in html
    assert "Acme-Old" not in html and "Everyone" not in html
    assert Client().get("/w/globex/sign-in/").status_code == 404  # no sign-in of its own
    assert Client().get("/w/nowhere/sign-in/").status_code == 404
