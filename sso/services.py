"""Single sign-on's writes: who a verified OpenID Connect sign-in is (sso_sign_in), refusals
(recorded), the one-time codes that hand a mobile app its tokens, and providers saved from admin.

The protocol (state, nonce, PKCE, the ID token's checks) is sso.oidc's; by the time claims reach
this module they are verified. The rules here (docs/sso.md):

- the email's domain must be one of the provider's allowed domains, at every sign-in;
- an (issuer, subject) pair seen before is that user, whatever the email says now;
- a new pair becomes a new user (just in time), unless a Parley account already has the email:
  then it is linked only when the provider opted in (`link_by_verified_email`) and the provider
  says `email_verified: true`; otherwise refused (`sso_account_exists`), because Parley never
  verified the email of an account made by sign-up, and linking on it would hand that account to
  whoever controls the address at the provider, or hand the real owner's sign-ins to whoever
  registered the address first.
"""

import base64
import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

import audit
from accounts.models import User, username_is
from accounts.services import _clean_display_name
from core import redis_clients
from core.errors import InvalidInput
from sso.models import SsoIdentity, SsoProvider
from sso.oidc import SsoError, discover
from sso.selectors import provider_by_id
from workspaces.services import member_join_by_sso

logger = logging.getLogger(__name__)

_USERNAME_BASE_MAX = 30
_USERNAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")
_MOBILE_PREFIX = "parley:sso:mobile:"
MOBILE_CODE_SECONDS = 60


@dataclass(frozen=True)
class SignIn:
    user: User
    created: bool  # made just now, just in time
    linked: bool  # an existing account linked to this identity just now


def _email_of(claims: dict[str, Any]) -> tuple[str, str]:
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise SsoError(
            "Your identity provider did not share your email address, which Parley needs to sign you in.",
            code="sso_email_missing",
            status=403,
        )
    email = email.strip()
    try:
        validate_email(email)
    except ValidationError:
        raise SsoError(
            "Your identity provider sent an email address Parley cannot use.", code="sso_email_missing", status=403
        ) from None
    return email, email.rsplit("@", 1)[1].lower()


def _email_verified(claims: dict[str, Any]) -> bool | None:
    """True or False when the provider says; None when it does not (some never send the claim)."""
    value = claims.get("email_verified")
    if isinstance(value, str):  # a few providers send "true" / "false"
        value = {"true": True, "false": False}.get(value.lower())
    return value if isinstance(value, bool) else None


def _refuse(
    provider: SsoProvider, claims: dict[str, Any], error: SsoError, *, domain: str = "", user: User | None = None
) -> SsoError:
    """Records the refusal (its own transaction: nothing else was written) and returns the error."""
    with transaction.atomic():
        audit.record(
            action="auth.sign_in_failed",
            actor=None,
            target=("user", user.pk if user is not None else ""),
            after={
                "via": "sso",
                "provider": provider.slug,
                "reason": error.code,
                "subject": str(claims.get("sub", "")),
                "email_domain": domain,
            },
        )
    return error


def sign_in_refused(*, provider: SsoProvider, error: SsoError) -> None:
    """A sign-in with `provider` failed before Parley knew who it was (the provider's error, a token
    that failed verification): recorded like a failed password sign-in."""
    _refuse(provider, {}, error)


def _username_base(email: str) -> str:
    local = email.rsplit("@", 1)[0]
    return _USERNAME_UNSAFE.sub("", local)[:_USERNAME_BASE_MAX].strip(".+-") or "user"


def _free_username(base: str) -> str:
    """`base`, or `base2` … `base9`, or `base-<random>`: the first no one has (in any case)."""
    for candidate in [base, *(f"{base}{n}" for n in range(2, 10))]:
        if not User.objects.filter(username_is(candidate)).exists():
            return candidate
    return f"{base}-{secrets.token_hex(3)}"


def _display_name(claims: dict[str, Any]) -> str:
    """The provider's `name`, under the account page's rules (accounts.services), or none."""
    try:
        return _clean_display_name(claims.get("name") or "")
    except InvalidInput:
        return ""


def _new_user(email: str, claims: dict[str, Any]) -> User:
    """A user with no password (they sign in through the provider; a password reset by email can
    give them one). Two sign-ins racing for one name: the loser takes a random suffix."""
    base = _username_base(email)
    for attempt in range(3):
        username = _free_username(base) if attempt == 0 else f"{base}-{secrets.token_hex(3)}"
        user = User(username=username, email=email, display_name=_display_name(claims))
        user.set_unusable_password()
        try:
            with transaction.atomic():
                user.save()
            return user
        except IntegrityError:
            continue
    raise SsoError("Parley could not create your account. Please try again.", code="sso_failed", status=503)


def sso_sign_in(*, provider: SsoProvider, claims: dict[str, Any]) -> SignIn:
    """The Parley user `claims` (verified by sso.oidc) stand for: found by (issuer, subject),
    linked, or created. Refusals raise SsoError after recording `auth.sign_in_failed`; then
    nothing else was written."""
    try:
        email, domain = _email_of(claims)
    except SsoError as error:
        raise _refuse(provider, claims, error) from None
    verified = _email_verified(claims)
    if verified is False:
        raise _refuse(
            provider,
            claims,
            SsoError(
                "Your identity provider says your email address is not verified yet. Verify it there, "
                "then sign in again.",
                code="sso_email_unverified",
                status=403,
            ),
            domain=domain,
        )
    if domain not in provider.allowed_domains:
        raise _refuse(
            provider,
            claims,
            SsoError(
                f"Accounts at {domain} cannot sign in with {provider.name}. Ask your administrator "
                "which account to use.",
                code="sso_domain_not_allowed",
                status=403,
            ),
            domain=domain,
        )
    for attempt in range(2):
        try:
            return _resolve(provider, claims, email=email, domain=domain, verified=verified)
        except IntegrityError:  # the same identity's first two sign-ins raced: the second finds the first's
            if attempt:
                raise
    raise AssertionError("unreachable")


def _resolve(
    provider: SsoProvider, claims: dict[str, Any], *, email: str, domain: str, verified: bool | None
) -> SignIn:
    subject = claims["sub"]
    refusal: tuple[SsoError, User | None] | None = None
    # Deferred: the workspace joined (its own audit chain) and user.create / sso.link (the global
    # one) lock their chains' heads in the one order every writer uses (docs/audit.md "Chains").
    with transaction.atomic(), audit.deferred():
        identity = (
            SsoIdentity.objects.select_for_update()
            .select_related("user")
            .filter(issuer=provider.issuer, subject=subject)
            .first()
        )
        if identity is not None:
            user = identity.user
            if not user.is_active:
                refusal = (_inactive(), user)
            else:
                identity.email = email
                identity.provider = provider
                identity.last_sign_in_at = timezone.now()
                identity.save(update_fields=["email", "provider", "last_sign_in_at"])
                return SignIn(user=user, created=False, linked=False)
        else:
            holders = list(User.objects.filter(email__iexact=email).order_by("pk")[:2])
            if not holders:
                user = _new_user(email, claims)
                _link(provider, user, subject=subject, email=email)
                _join_workspace(provider, user)
                audit.record(
                    action="user.create",
                    actor=user,
                    target=user,
                    after={"username": user.username, "via": "sso", "provider": provider.slug, "email_domain": domain},
                )
                return SignIn(user=user, created=True, linked=False)
            can_link = provider.link_by_verified_email and verified is True and len(holders) == 1
            if can_link and holders[0].is_active:
                user = holders[0]
                _link(provider, user, subject=subject, email=email)
                _join_workspace(provider, user)
                audit.record(
                    action="sso.link",
                    actor=user,
                    target=user,
                    after={"provider": provider.slug, "subject": subject, "by": "verified_email"},
                )
                return SignIn(user=user, created=False, linked=True)
            if can_link:
                refusal = (_inactive(), holders[0])
            else:
                refusal = (
                    SsoError(
                        f"A Parley account already uses {email}, and it is not connected to {provider.name}. "
                        "Sign in with your password instead, or ask an administrator to connect it.",
                        code="sso_account_exists",
                        status=409,
                    ),
                    holders[0],
                )
    error, holder = refusal
    raise _refuse(provider, claims, error, domain=domain, user=holder)


def _join_workspace(provider: SsoProvider, user: User) -> None:
    """The first time a provider vouches for someone, they join its workspace. Not at later
    sign-ins: someone a workspace admin removed stays removed (remove them at the provider too)."""
    if provider.workspace is not None:
        member_join_by_sso(user=user, workspace=provider.workspace, provider=provider.slug)


def _inactive() -> SsoError:
    return SsoError("This Parley account is deactivated.", code="sso_account_inactive", status=403)


def _link(provider: SsoProvider, user: User, *, subject: str, email: str) -> SsoIdentity:
    return SsoIdentity.objects.create(
        user=user,
        provider=provider,
        issuer=provider.issuer,
        subject=subject,
        email=email,
        last_sign_in_at=timezone.now(),
    )


# -- mobile: a one-time code for the app, exchanged for JWTs --------------------------------------


def _code_key(code: str) -> str:
    return _MOBILE_PREFIX + hashlib.sha256(code.encode()).hexdigest()  # Redis never holds a usable code


def pkce_s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def mobile_code_issue(*, user: User, provider: SsoProvider, code_challenge: str) -> str:
    """A random code, valid once for MOBILE_CODE_SECONDS, that the app which holds the verifier of
    `code_challenge` (its own PKCE pair) exchanges for tokens (mobile_code_redeem)."""
    code = secrets.token_urlsafe(32)
    value = json.dumps({"user": user.pk, "provider": provider.slug, "challenge": code_challenge})
    redis_clients.client().set(_code_key(code), value, ex=MOBILE_CODE_SECONDS, nx=True)
    return code


def mobile_code_redeem(*, code: str, code_verifier: str) -> User:
    """The user a code was issued to, once; `sso_code_invalid` for an unknown, used or expired code,
    a wrong verifier (the code is spent all the same) or a user deactivated since."""
    invalid = InvalidInput("This sign-in code is not valid. Sign in again.", code="sso_code_invalid")
    if not code or len(code) > 128 or not code_verifier or len(code_verifier) > 128:
        raise invalid
    raw = redis_clients.client().getdel(_code_key(code))
    if raw is None:
        raise invalid
    issued = json.loads(cast(bytes, raw))
    try:
        expected = pkce_s256(code_verifier)
    except UnicodeEncodeError:
        raise invalid from None
    if not secrets.compare_digest(expected, str(issued["challenge"])):
        raise invalid
    user = User.objects.filter(pk=issued["user"], is_active=True).first()
    if user is None:
        raise invalid
    audit.record(
        action="auth.sign_in", actor=user, target=user, after={"via": "sso_token", "provider": issued["provider"]}
    )
    return user


# -- providers (admin) ------------------------------------------------------------------------------

_AUDITED_FIELDS = (
    "slug",
    "name",
    "issuer",
    "client_id",
    "scopes",
    "allowed_domains",
    "enabled",
    "link_by_verified_email",
    "workspace_id",
)


def _summary(provider: SsoProvider) -> dict[str, object]:
    return {name: getattr(provider, name) for name in _AUDITED_FIELDS}  # never the client secret


@transaction.atomic
def provider_save(
    *, actor: AbstractBaseUser | AnonymousUser | None, provider: SsoProvider, secret_changed: bool = False
) -> SsoProvider:
    """Create or change a provider (admin); recorded as `sso.provider_create` / `_update`. Domains
    are kept lower-case and without duplicates."""
    provider.allowed_domains = sorted({domain.strip().lower() for domain in provider.allowed_domains if domain.strip()})
    before = None
    if provider.pk is not None:
        old = SsoProvider.objects.filter(pk=provider.pk).first()
        before = _summary(old) if old is not None else None
    creating = before is None
    provider.save()
    after = _summary(provider)
    if secret_changed:
        after["client_secret"] = "changed"
    audit.record(
        action="sso.provider_create" if creating else "sso.provider_update",
        actor=actor,
        target=provider,
        before=before,
        after=after,
    )
    return provider


@transaction.atomic
def identity_unlink(*, actor: AbstractBaseUser | AnonymousUser | None, identity: SsoIdentity) -> None:
    """Forget that an (issuer, subject) pair is this user (admin): their next sign-in with that
    provider is a first one again (a new account, or sso_account_exists). Recorded as `sso.unlink`."""
    summary = {"provider": identity.provider.slug if identity.provider else "", "subject": identity.subject}
    user_id = identity.user_id
    identity.delete()
    audit.record(action="sso.unlink", actor=actor, target=("user", user_id), before=summary)


@transaction.atomic
def provider_delete(*, actor: AbstractBaseUser | AnonymousUser | None, provider: SsoProvider) -> None:
    """Remove a provider (admin). Its identities stay (their users keep signing in if the issuer is
    configured again); recorded as `sso.provider_delete`."""
    summary = _summary(provider)
    target = ("ssoprovider", provider.pk)
    provider.delete()
    audit.record(action="sso.provider_delete", actor=actor, target=target, before=summary)


# -- signing out at the provider too (OpenID Connect RP-Initiated Logout 1.0) ----------------------

LOGOUT_SESSION_KEY = "parley_sso_logout"


def remember_for_logout(*, session: Any, provider: SsoProvider, id_token: str) -> None:
    """A browser session made by an SSO sign-in keeps the provider and the ID token, so that
    signing out of Parley can sign out of the provider too (`provider_logout`)."""
    session[LOGOUT_SESSION_KEY] = {"provider": provider.pk, "id_token": id_token}


def provider_logout(*, remembered: object, post_logout_redirect_uri: str) -> tuple[SsoProvider, str] | None:
    """Where to send a browser that just signed out of Parley: its provider and the provider's
    end-session URL (with the ID token as the hint and Parley's sign-in page to come back to); or
    None when the session was not made by SSO, the provider is disabled or gone, names no such
    endpoint, or cannot be reached now (signing out of Parley never depends on the provider)."""
    if not isinstance(remembered, dict) or not isinstance(remembered.get("id_token"), str):
        return None
    provider_id = remembered.get("provider")
    provider = provider_by_id(provider_id) if isinstance(provider_id, int) else None
    if provider is None:
        return None
    try:
        endpoint = discover(provider).end_session
    except SsoError as error:
        logger.warning("sso logout skipped", extra={"provider": provider.slug, "reason": error.code})
        return None
    if not endpoint:
        return None
    query = urlencode(
        {
            "id_token_hint": remembered["id_token"],
            "client_id": provider.client_id,
            "post_logout_redirect_uri": post_logout_redirect_uri,
        }
    )
    return provider, f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"
