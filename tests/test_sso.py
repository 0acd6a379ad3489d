"""Single sign-on end to end against a real OpenID Connect provider: django-oauth-toolkit with OIDC
on (tests/oidc_provider/), in its own process, signing ID tokens with an RSA key made for the run.

Parley runs in process (Django's test client, host `testserver`) for the HTTP tests: the provider
sends the "browser" (a requests session: its login form, its authorize endpoint) back to
http://testserver/sso/callback/, and Parley, in this process, calls the provider's token, JWKS and
discovery endpoints over HTTP. The browser test runs Parley as a real server and Chromium through
the whole redirect flow."""

import base64
import hashlib
import html
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client
from jwcrypto import jwk

from accounts.models import User
from audit.models import AuditEntry
from sso import services
from sso.models import SsoIdentity, SsoProvider
from sso.oidc import Endpoints, SsoClient, SsoError, discover
from tests import test_browser
from tests.conftest import free_port, wait_for_port
from workspaces.models import WorkspaceMembership

ROOT = Path(__file__).resolve().parent.parent
CALLBACK = "http://testserver/sso/callback/"
SIGNED_OUT = "http://testserver/login/"  # where the provider sends a browser that signed out
LOOPBACK_CALLBACK = "http://127.0.0.1/sso/callback/"
LOOPBACK_SIGNED_OUT = "http://127.0.0.1/login/"  # any port (RFC 8252 loopback): the live servers
PASSWORD = "provider-pass-4471"

chromium = test_browser.chromium  # the browser test's fixture (Debian's Chromium, headless)


@dataclass
class Idp:
    """The running provider."""

    issuer: str
    setup_token: str
    private_pem: bytes
    kid: str

    def setup(self, *, users: list[dict] | None = None, clients: list[dict] | None = None) -> dict[str, str]:
        """Creates or updates users and clients; returns {username: sub}."""
        response = requests.post(
            f"{self.issuer}/testing/setup/",
            json={"users": users or [], "clients": clients or []},
            headers={"X-Setup-Token": self.setup_token},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["subjects"]

    def person(self, username: str, email: str, **extra) -> str:
        """A user at the provider (password PASSWORD); their `sub`."""
        return self.setup(users=[{"username": username, "email": email, "password": PASSWORD, **extra}])[username]


@pytest.fixture(scope="module")
def idp(tmp_path_factory) -> Iterator[Idp]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    token = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "OIDC_TEST_SECRET_KEY": secrets.token_urlsafe(50),
        "OIDC_TEST_DATABASE": str(tmp_path_factory.mktemp("oidc_provider") / "provider.sqlite3"),
        "OIDC_TEST_ISSUER": issuer,
        "OIDC_TEST_RSA_KEY": pem.decode(),
        "OIDC_TEST_SETUP_TOKEN": token,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off"]
        + ["--log-level", "warning", "tests.oidc_provider.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, timeout=60)
        yield Idp(issuer=issuer, setup_token=token, private_pem=pem, kid=jwk.JWK.from_pem(pem).thumbprint())
    finally:
        process.terminate()
        process.wait(timeout=10)


def make_provider(idp: Idp, *, slug: str = "acme", domains: tuple[str, ...] = ("example.com",), **extra) -> SsoProvider:
    client_id = f"parley-{uuid.uuid4().hex[:12]}"
    secret = secrets.token_urlsafe(24)
    idp.setup(
        clients=[
            {
                "client_id": client_id,
                "client_secret": secret,
                "redirect_uris": [CALLBACK, LOOPBACK_CALLBACK],
                "post_logout_redirect_uris": [SIGNED_OUT, LOOPBACK_SIGNED_OUT],
            }
        ]
    )
    provider = SsoProvider(
        slug=slug,
        name="Acme ID",
        issuer=idp.issuer,
        client_id=client_id,
        client_secret=secret,
        allowed_domains=list(domains),
        **extra,
    )
    return services.provider_save(actor=None, provider=provider, secret_changed=True)


def at_provider(
    authorize_url: str, username: str, password: str = PASSWORD, browser: requests.Session | None = None
) -> str:
    """A person's browser at the provider: the authorize URL sends them to its login form, they
    sign in, and it sends them back; returns where (Parley's callback with code and state)."""
    browser = browser or requests.Session()
    answer = browser.get(authorize_url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text[:500]
    login_url = urljoin(authorize_url, answer.headers["Location"])
    form = browser.get(login_url, timeout=10)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert csrf, form.text[:500]
    next_url = parse_qs(urlsplit(login_url).query)["next"][0]
    answer = browser.post(
        login_url,
        data={"csrfmiddlewaretoken": csrf.group(1), "username": username, "password": password, "next": next_url},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text[:500]
    answer = browser.get(urljoin(login_url, answer.headers["Location"]), allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text[:500]
    return answer.headers["Location"]


def start(client: Client, slug: str = "acme", **query: str) -> str:
    """Parley's sign-in start: the provider's authorize URL it redirects to."""
    answer = client.get(f"/sso/{slug}/login/", query)
    assert answer.status_code == 302, answer.content[:500]
    return answer["Location"]


def sign_in(client: Client, username: str, slug: str = "acme"):
    """The whole flow in `client`'s "browser"; Parley's answer to the callback."""
    return client.get(at_provider(start(client, slug), username))


def error_code(answer) -> str | None:
    found = re.search(rb'data-code="([a-z_]+)"', answer.content)
    return found.group(1).decode() if found else None


def signed_in_as(client: Client) -> str | None:
    answer = client.get("/api/v1/me/")
    return answer.json()["username"] if answer.status_code == 200 else None


def actions(*names: str) -> list[tuple[str, dict | None]]:
    return [(entry.action, entry.after) for entry in AuditEntry.objects.filter(action__in=names).order_by("position")]


# -- the flow ----------------------------------------------------------------------------------------


def test_it_creates_a_new_person_just_in_time(idp, db):
    provider = make_provider(idp)
    subject = idp.person("alice", "Alice@Example.com", name="Alice Liddell")
    client = Client()
    page = client.get("/login/")
    assert b'href="/sso/acme/login/"' in page.content and b"Sign in with Acme ID" in page.content

    authorize_url = start(client, next="/account/")
    request = parse_qs(urlsplit(authorize_url).query)
    assert authorize_url.startswith(f"{idp.issuer}/authorize/")
    assert request["code_challenge_method"] == ["S256"] and len(request["code_challenge"][0]) == 43
    assert request["nonce"][0] and request["state"][0] and request["redirect_uri"] == [CALLBACK]
    answer = client.get(at_provider(authorize_url, "alice"))

    assert answer.status_code == 302 and answer["Location"] == "/account/"
    user = User.objects.get(sso_identities__issuer=idp.issuer, sso_identities__subject=subject)
    assert signed_in_as(client) == user.username == "Alice"
    assert (user.email, user.display_name, user.has_usable_password()) == ("Alice@Example.com", "Alice Liddell", False)
    assert actions("user.create", "auth.sign_in") == [
        ("user.create", {"username": "Alice", "via": "sso", "provider": "acme", "email_domain": "example.com"}),
        ("auth.sign_in", {"via": "sso", "provider": "acme"}),
    ]
    assert SsoIdentity.objects.get(user=user).provider == provider
    assert WorkspaceMembership.objects.filter(user=user, role="member").count() == 1  # the default one, for now


def test_signing_out_of_parley_signs_out_at_the_provider_too(idp, db, make_user):
    """RP-initiated logout: a session SSO made remembers the ID token; signing out sends the
    browser to the provider's end-session endpoint with it as the hint, the provider ends its own
    session and sends the browser back to Parley's sign-in page. A password session signs out as
    always."""
    make_provider(idp)
    idp.person("nora", "nora@example.com")
    client, browser = Client(), requests.Session()
    client.get(at_provider(start(client), "nora", browser=browser))
    assert signed_in_as(client) == "nora"
    again = browser.get(start(client), allow_redirects=False, timeout=10)  # the provider remembers her
    assert again.status_code == 302 and again.headers["Location"].startswith(CALLBACK)

    answer = client.post("/logout/")

    # A page that goes on to the provider (a redirect of the sign-out form would break its policy).
    assert answer.status_code == 200 and answer.get("Cache-Control", "").startswith("max-age=0")
    onward = re.search(rb'http-equiv="refresh" content="0; url=([^"]+)"', answer.content)
    assert onward, answer.content[:800]
    url = html.unescape(onward.group(1).decode())
    assert url.startswith(f"{idp.issuer}/logout/?") and f'href="{html.escape(url)}"'.encode() in answer.content
    asked = parse_qs(urlsplit(url).query)
    assert asked["post_logout_redirect_uri"] == [SIGNED_OUT] and asked["id_token_hint"][0].count(".") == 2
    assert signed_in_as(client) is None  # out of Parley before the provider is even asked
    back = browser.get(url, allow_redirects=False, timeout=10)
    assert (back.status_code, back.headers["Location"]) == (302, SIGNED_OUT)
    fresh = browser.get(start(client), allow_redirects=False, timeout=10)  # the provider forgot her
    assert fresh.status_code == 302 and "/accounts/login/" in fresh.headers["Location"]

    password = Client()
    password.force_login(make_user("pat"))
    assert password.post("/logout/")["Location"] == "/login/"


def test_it_refuses_an_email_domain_not_allowed_and_creates_nothing(idp, db):
    make_provider(idp, domains=("example.com", "example.org"))
    idp.person("mallory", "mallory@mail.example.com")  # a subdomain is another domain
    users = User.objects.count()
    client = Client()

    answer = sign_in(client, "mallory")

    assert answer.status_code == 403 and error_code(answer) == "sso_domain_not_allowed"
    assert b"Accounts at mail.example.com cannot sign in with Acme ID" in answer.content
    assert User.objects.count() == users and not SsoIdentity.objects.exists()
    assert signed_in_as(client) is None
    [(_, after)] = actions("auth.sign_in_failed")
    assert after is not None and (after["reason"], after["email_domain"]) == (
        "sso_domain_not_allowed",
        "mail.example.com",
    )


def test_it_refuses_a_tampered_replayed_or_foreign_state(idp, db):
    make_provider(idp)
    idp.person("bob", "bob@example.com")
    client = Client()
    callback = at_provider(start(client), "bob")
    state = parse_qs(urlsplit(callback).query)["state"][0]

    tampered = client.get(callback.replace(f"state={state}", f"state={state[:-2]}xy"))
    foreign = Client().get(callback)  # another browser (a login CSRF attempt)

    for answer in (tampered, foreign):
        assert answer.status_code == 400 and error_code(answer) == "sso_state_invalid"
    assert not User.objects.filter(email="bob@example.com").exists()
    assert client.get(callback).status_code == 302 and signed_in_as(client) == "bob"  # the genuine one
    replayed = Client().get(callback)
    assert error_code(replayed) == "sso_state_invalid"
    assert error_code(client.get(callback)) == "sso_state_invalid"  # used once


def test_a_returning_person_is_found_by_subject_whatever_their_email_says_now(idp, db):
    make_provider(idp, domains=("example.com", "example.net"))
    subject = idp.person("carol", "carol@example.com")
    assert sign_in(Client(), "carol").status_code == 302
    user = User.objects.get(sso_identities__subject=subject)

    idp.person("carol", "carol.new@example.net")  # renamed at the provider
    client = Client()
    assert sign_in(client, "carol").status_code == 302

    assert signed_in_as(client) == user.username
    assert User.objects.filter(sso_identities__isnull=False).count() == 1
    assert SsoIdentity.objects.get(subject=subject).email == "carol.new@example.net"


def test_staff_unlink_an_identity_in_admin(idp, db, admin_client):
    make_provider(idp)
    subject = idp.person("judy", "judy@example.com")
    assert sign_in(Client(), "judy").status_code == 302
    identity = SsoIdentity.objects.get(subject=subject)

    delete = f"/admin/sso/ssoidentity/{identity.pk}/delete/"
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert not SsoIdentity.objects.exists()
    [before] = AuditEntry.objects.filter(action="sso.unlink").values_list("before", flat=True)
    assert before == {"provider": "acme", "subject": subject}
    again = sign_in(Client(), "judy")  # a first sign-in again: the account has the email
    assert error_code(again) == "sso_account_exists"


def test_an_existing_account_with_the_email_is_linked_only_if_the_provider_opted_in_and_verified(idp, db, make_user):
    provider = make_provider(idp)
    dave = make_user("dave")  # dave@example.com, made by sign-up: Parley never verified it
    idp.person("dave-at-acme", "dave@example.com", email_verified=True)

    refused = sign_in(Client(), "dave-at-acme")
    assert refused.status_code == 409 and error_code(refused) == "sso_account_exists"

    provider.link_by_verified_email = True
    services.provider_save(actor=None, provider=provider)
    idp.person("dave-at-acme", "dave@example.com", email_verified=False)
    unverified = sign_in(Client(), "dave-at-acme")
    assert unverified.status_code == 403 and error_code(unverified) == "sso_email_unverified"
    assert not SsoIdentity.objects.exists()

    idp.person("dave-at-acme", "dave@example.com", email_verified=True)
    client = Client()
    assert sign_in(client, "dave-at-acme").status_code == 302
    assert signed_in_as(client) == "dave" and SsoIdentity.objects.get().user == dave
    assert [action for action, _ in actions("sso.link", "user.create")] == ["sso.link"]


def test_people_a_workspace_provider_vouches_for_join_that_workspace_once(idp, db, make_user):
    from workspaces.services import member_remove, workspace_create

    owner = workspace_create(creator=make_user("owner"), name="Acme team")
    make_provider(idp, workspace=owner.workspace)
    idp.person("ivan", "ivan@example.com")
    assert sign_in(Client(), "ivan").status_code == 302
    ivan = User.objects.get(username="ivan")
    assert WorkspaceMembership.objects.get(workspace=owner.workspace, user=ivan).role == "member"
    [(_, after)] = actions("workspace.member.join")
    assert after == {"role": "member", "via": "sso", "provider": "acme"}

    member_remove(actor=owner, user=ivan)  # an admin removed him: a later sign-in does not undo it
    client = Client()
    assert sign_in(client, "ivan").status_code == 302 and signed_in_as(client) == "ivan"
    assert not WorkspaceMembership.objects.filter(workspace=owner.workspace, user=ivan).exists()


def test_an_email_only_in_userinfo_is_fetched_from_there(idp, db):
    make_provider(idp)
    subject = idp.person("heidi", "heidi@example.com", email_in_userinfo_only=True)
    client = Client()
    assert sign_in(client, "heidi").status_code == 302
    assert signed_in_as(client) == "heidi"
    assert SsoIdentity.objects.get(subject=subject).email == "heidi@example.com"


def test_a_sign_in_the_provider_refused_is_reported_and_recorded(idp, db):
    make_provider(idp)
    client = Client()
    state = parse_qs(urlsplit(start(client)).query)["state"][0]
    answer = client.get("/sso/callback/", {"error": "access_denied", "state": state})
    assert answer.status_code == 400 and error_code(answer) == "sso_provider_refused"
    assert b"did not sign you in (access_denied)" in answer.content
    [(_, after)] = actions("auth.sign_in_failed")
    assert after is not None and (after["provider"], after["reason"]) == ("acme", "sso_provider_refused")


def test_a_disabled_provider_is_not_found(idp, db):
    provider = make_provider(idp)
    provider.enabled = False
    services.provider_save(actor=None, provider=provider)
    assert Client().get("/sso/acme/login/").status_code == 404
    assert b"/sso/acme/login/" not in Client().get("/login/").content


def test_staff_configure_a_provider_in_admin_without_the_secret_ever_shown_or_audited(admin_client, db):
    form = {
        "name": "Acme ID",
        "slug": "acme",
        "enabled": "on",
        "issuer": "https://login.acme.example/realms/acme",
        "client_id": "parley",
        "client_secret": "s3cret-value",
        "scopes": "openid email profile",
        "allowed_domains": "Acme.example, acme.example, corp.example",
    }
    assert admin_client.post("/admin/sso/ssoprovider/add/", form).status_code == 302
    provider = SsoProvider.objects.get()
    assert (provider.client_secret, provider.allowed_domains) == ("s3cret-value", ["acme.example", "corp.example"])

    change = f"/admin/sso/ssoprovider/{provider.pk}/change/"
    assert b"s3cret-value" not in admin_client.get(change).content
    assert admin_client.post(change, form | {"client_secret": "", "name": "Acme"}).status_code == 302
    provider.refresh_from_db()
    assert (provider.name, provider.client_secret) == ("Acme", "s3cret-value")  # kept
    refused = admin_client.post(change, form | {"issuer": "http://acme.example/", "allowed_domains": "not a domain"})
    assert refused.status_code == 200
    assert b"Use an https:// issuer" in refused.content and b"Not a domain" in refused.content

    entries = AuditEntry.objects.filter(action__startswith="sso.provider_").order_by("position")
    assert [entry.action for entry in entries] == ["sso.provider_create", "sso.provider_update"]
    assert entries[0].after is not None and entries[0].after["client_secret"] == "changed"
    assert all(b"s3cret" not in str(entry.after).encode() for entry in entries)


# -- the ID token's checks ----------------------------------------------------------------------------


def test_the_id_token_is_verified_completely(idp, db):
    """Tokens signed with the provider's own key (served by its JWKS), each wrong in one way."""
    provider = make_provider(idp)
    client = SsoClient(provider=provider, endpoints=discover(provider))
    now = int(time.time())
    good = {"iss": idp.issuer, "aud": provider.client_id, "sub": "42", "iat": now, "exp": now + 300, "nonce": "n-1"}

    def token(claims: dict, **header) -> str:
        return jwt.encode(claims, idp.private_pem, algorithm="RS256", headers={"kid": idp.kid, **header})

    assert client.verify_token(token(good), nonce="n-1")["sub"] == "42"
    wrong = {
        "issuer": token(good | {"iss": "https://evil.example"}),
        "audience": token(good | {"aud": "another-client"}),
        "expired": token(good | {"exp": now - 3600, "iat": now - 7200}),
        "no exp": token({k: v for k, v in good.items() if k != "exp"}),
        "nonce": token(good | {"nonce": "n-2"}),
        "azp": token(good | {"aud": [provider.client_id, "another-client"]}),
        "unknown key": token(good, kid="not-a-key"),
        "HS256 with the client secret": jwt.encode(good, provider.client_secret, algorithm="HS256"),
        "none": jwt.encode(good, None, algorithm="none"),
        "signature": token(good)[:-4] + "AAAA",
    }
    for why, value in wrong.items():
        with pytest.raises(SsoError) as refused:
            client.verify_token(value, nonce="n-1")
        assert refused.value.code == "sso_token_invalid", why
    azp = token(good | {"aud": [provider.client_id, "another-client"], "azp": provider.client_id})
    assert client.verify_token(azp, nonce="n-1")["sub"] == "42"


def test_a_provider_whose_discovery_names_another_issuer_is_refused(idp, db):
    provider = make_provider(idp)
    provider.issuer = idp.issuer + "/"  # the document says the issuer without the slash
    with pytest.raises(SsoError) as refused:
        discover(provider)
    assert refused.value.code == "sso_provider_misconfigured"
    assert isinstance(discover(make_provider(idp, slug="other")), Endpoints)


# -- mobile ---------------------------------------------------------------------------------------------


def exchange(app: Client, code: str, verifier: str):
    body = {"code": code, "code_verifier": verifier}
    return app.post("/api/v1/auth/sso/token/", body, content_type="application/json")


def test_a_mobile_app_gets_tokens_for_a_one_time_code(idp, db, settings):
    settings.SSO_MOBILE_REDIRECT_URIS = ["parley-app://sso"]
    make_provider(idp)
    idp.person("erin", "erin@example.com")
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    tab = Client()  # the app's browser tab

    assert error_code(
        tab.get("/sso/acme/login/", {"redirect_uri": "https://evil.example/", "code_challenge": challenge})
    ) == ("sso_mobile_invalid")
    authorize_url = start(tab, redirect_uri="parley-app://sso", code_challenge=challenge, code_challenge_method="S256")
    answer = tab.get(at_provider(authorize_url, "erin"))

    assert answer.status_code == 302 and answer["Location"].startswith("parley-app://sso?code=")
    assert signed_in_as(tab) is None  # the tab is not signed in: the app is
    code = parse_qs(urlsplit(answer["Location"]).query)["code"][0]
    app = Client()
    wrong = app.post(
        "/api/v1/auth/sso/token/", {"code": code, "code_verifier": "x" * 43}, content_type="application/json"
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "sso_code_invalid"  # and the code is spent

    tab = Client()
    answer = tab.get(at_provider(start(tab, redirect_uri="parley-app://sso", code_challenge=challenge), "erin"))
    code = parse_qs(urlsplit(answer["Location"]).query)["code"][0]
    tokens = app.post(
        "/api/v1/auth/sso/token/", {"code": code, "code_verifier": verifier}, content_type="application/json"
    )
    assert tokens.status_code == 200
    me = Client().get("/api/v1/me/", headers={"Authorization": f"Bearer {tokens.json()['access']}"})
    assert me.json()["username"] == "erin"
    again = app.post(
        "/api/v1/auth/sso/token/", {"code": code, "code_verifier": verifier}, content_type="application/json"
    )
    assert again.json()["error"]["code"] == "sso_code_invalid"
    assert ("auth.sign_in", {"via": "sso_token", "provider": "acme"}) in actions("auth.sign_in")


# -- the browser --------------------------------------------------------------------------------------


@pytest.mark.browser
def test_signing_in_with_the_provider_in_a_browser(idp, start_server, chromium):
    from playwright.sync_api import expect

    base_url = start_server()
    make_provider(idp)
    idp.person("frank", "frank@example.com", name="Frank Example")
    browser = chromium()  # after the database setup (tests/test_browser.py)
    errors: list[str] = []
    page = test_browser.open_page(browser, base_url, errors)

    page.goto("/login/")
    page.get_by_role("link", name="Sign in with Acme ID").click()
    expect(page.get_by_role("heading", name="Test identity provider")).to_be_visible()
    page.get_by_label("Provider username").fill("frank")
    page.get_by_label("Provider password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in to the provider").click()
    expect(page.get_by_test_id("current-user")).to_have_text("frank")
    expect(page.get_by_role("heading", name="Your rooms")).to_be_visible()
    page.goto("/sso/callback/?code=x&state=forged")  # the error page, under the page policy too
    expect(page.get_by_test_id("sso-error")).to_have_attribute("data-code", "sso_state_invalid")

    # Signing out goes on to the provider and comes back to the sign-in page; the provider's
    # session is gone too: signing in again asks for its password.
    page.goto("/")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in with Acme ID")).to_be_visible()
    assert urlsplit(page.url).path == "/login/" and urlsplit(page.url).netloc == urlsplit(base_url).netloc
    page.get_by_role("link", name="Sign in with Acme ID").click()
    expect(page.get_by_role("heading", name="Test identity provider")).to_be_visible()
    assert not errors, errors
