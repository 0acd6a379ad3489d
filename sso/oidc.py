"""The OpenID Connect protocol, per provider, on top of mozilla-django-oidc.

mozilla-django-oidc reads one provider from settings; Parley has one per SsoProvider row. So its
request view and its backend are subclassed to take the provider of the request:

- `SsoLoginView` (its OIDCAuthenticationRequestView): state, nonce and a PKCE S256 challenge,
  kept in the session under the state (the library's `oidc_states`), plus which provider the state
  was made for; then the redirect to the provider.
- `SsoClient` (its OIDCAuthenticationBackend, used as a client, not as a Django auth backend: the
  library's token request, JWKS lookup and userinfo request are used as they are) exchanges the
  code and verifies the ID token completely, which the library does not: signature (JWKS, an
  asymmetric algorithm only), `iss`, `aud` (and `azp`), `exp`, `iat`, `sub` and the nonce.

What the verified claims mean for Parley (domains, who the user is) is sso.services' job.
The library's contract used here (its names, their arguments) is pinned by tests/test_sso.py.
"""

import hmac
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import requests
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationRequestView

from accounts.models import User
from core.errors import ApplicationError
from sso.models import SsoProvider

logger = logging.getLogger(__name__)

# Seconds to wait for the provider (discovery, token, JWKS, userinfo requests).
HTTP_TIMEOUT = 5
# A discovery document is reused this long (it rarely changes; keys are fetched at every sign-in).
DISCOVERY_SECONDS = 3600
# Clock skew allowed between Parley and the provider for exp / iat.
LEEWAY_SECONDS = 60
# ID tokens must be signed with the provider's key pair: never HS* (keyed with the client secret,
# which Parley's database holds) and never "none".
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
# The session key under which each state's provider is kept (next to the library's `oidc_states`).
STATE_PROVIDERS = "sso_state_providers"
# Extra per-state data of a mobile sign-in (sso.views, docs/sso.md "Mobile").
STATE_MOBILE = "sso_state_mobile"


class SsoError(ApplicationError):
    """A sign-in that cannot complete; rendered as the error page (sso.views) with its code."""

    code = "sso_failed"
    status = 400
    message = "Single sign-on did not complete."


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    jwks: str
    userinfo: str  # "" when the provider has none
    end_session: str = ""  # RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0); "" when none


def discover(provider: SsoProvider) -> Endpoints:
    """The provider's endpoints from `<issuer>/.well-known/openid-configuration` (cached). Its
    `issuer` must be the configured one exactly (OpenID Connect Discovery 4.3)."""
    key = f"sso:discovery:{provider.issuer}"
    document = cache.get(key)
    if document is None:
        url = provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            response = requests.get(url, timeout=HTTP_TIMEOUT)
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as error:
            raise _unreachable(provider, "discovery", error) from None
        if not isinstance(document, dict) or document.get("issuer") != provider.issuer:
            raise SsoError(
                f"{provider.name} is not configured correctly (its issuer does not match).",
                code="sso_provider_misconfigured",
                status=502,
            )
        cache.set(key, document, DISCOVERY_SECONDS)
    try:
        return Endpoints(
            authorization=str(document["authorization_endpoint"]),
            token=str(document["token_endpoint"]),
            jwks=str(document["jwks_uri"]),
            userinfo=str(document.get("userinfo_endpoint") or ""),
            end_session=str(document.get("end_session_endpoint") or ""),
        )
    except KeyError:
        raise SsoError(
            f"{provider.name} is not configured correctly (its discovery document lacks an endpoint).",
            code="sso_provider_misconfigured",
            status=502,
        ) from None


def callback_url(request: HttpRequest) -> str:
    """The one redirect URI to register at every provider: the state says which provider it is."""
    return request.build_absolute_uri(reverse("sso-callback"))


class SsoLoginView(OIDCAuthenticationRequestView):
    """Starts a sign-in with `provider` (set by sso.views.login_start, which found it)."""

    provider: SsoProvider
    endpoints: Endpoints

    def __init__(self, *, provider: SsoProvider, endpoints: Endpoints, mobile: dict[str, str] | None = None) -> None:
        # Not the library's __init__: it reads the one provider of settings.
        super(OIDCAuthenticationRequestView, self).__init__()
        self.mobile = mobile  # a mobile app's redirect URI and PKCE challenge (sso.views)
        self.provider = provider
        self.endpoints = endpoints
        self.OIDC_OP_AUTH_ENDPOINT = endpoints.authorization
        self.OIDC_RP_CLIENT_ID = provider.client_id

    def get_settings(self, attr: str, *default: Any) -> Any:  # the library's settings, per provider
        values = {
            "OIDC_RP_SCOPES": self.provider.scopes,
            "OIDC_USE_NONCE": True,
            "OIDC_USE_PKCE": True,
            "OIDC_PKCE_CODE_CHALLENGE_METHOD": "S256",
            "OIDC_AUTHENTICATION_CALLBACK_URL": "sso-callback",
            "OIDC_REDIRECT_FIELD_NAME": "next",
        }
        if attr in values:
            return values[attr]
        return default[0] if default else None

    def get(self, request: HttpRequest) -> HttpResponseRedirect:
        response = super().get(request)
        state = parse_qs(urlsplit(response.url).query)["state"][0]
        # Which provider this state is for: the callback completes with that one only, whatever
        # the redirect carries (no provider mix-up), and forgets it with the state.
        known = request.session.get("oidc_states", {})  # the library keeps the latest 50
        providers = {key: value for key, value in request.session.get(STATE_PROVIDERS, {}).items() if key in known}
        providers[state] = self.provider.pk
        request.session[STATE_PROVIDERS] = providers
        mobile = {key: value for key, value in request.session.get(STATE_MOBILE, {}).items() if key in known}
        if self.mobile is not None:
            mobile[state] = self.mobile
        request.session[STATE_MOBILE] = mobile
        return response


@dataclass(frozen=True)
class PendingSignIn:
    """What the session kept for one state, taken out of it once (a state works once)."""

    provider_id: int
    nonce: str
    code_verifier: str
    next_url: str | None
    mobile: dict[str, str] | None  # a mobile app's sign-in: its redirect URI and PKCE challenge


def take_state(request: HttpRequest, state: str) -> PendingSignIn:
    """Removes `state` from the session and returns what was kept for it; sso_state_invalid if
    this browser never started that sign-in (forged, replayed, another browser's, expired session)."""
    states = request.session.get("oidc_states")
    providers = request.session.get(STATE_PROVIDERS)
    if (
        not state
        or not isinstance(states, dict)
        or not isinstance(providers, dict)
        or not isinstance(states.get(state), dict)
        or state not in providers
    ):
        raise SsoError(
            "This sign-in link is not valid any more (it was used already, or started in another "
            "browser). Please start again.",
            code="sso_state_invalid",
        )
    entry = states.pop(state)
    provider_id = providers.pop(state)
    mobiles = request.session.get(STATE_MOBILE)
    mobile = mobiles.pop(state, None) if isinstance(mobiles, dict) else None
    request.session["oidc_states"] = states
    request.session[STATE_PROVIDERS] = providers
    request.session[STATE_MOBILE] = mobiles if isinstance(mobiles, dict) else {}
    request.session.save()  # before the slow part: a replay of this state fails from now on
    return PendingSignIn(
        provider_id=int(provider_id),
        nonce=str(entry.get("nonce") or ""),
        code_verifier=str(entry.get("code_verifier") or ""),
        next_url=request.session.get("oidc_login_next"),
        mobile=mobile if isinstance(mobile, dict) else None,
    )


def _invalid(provider: SsoProvider, why: str) -> SsoError:
    logger.warning("sso token refused", extra={"provider": provider.slug, "reason": why})
    return SsoError(f"{provider.name} sent a sign-in Parley cannot accept.", code="sso_token_invalid")


def _unreachable(provider: SsoProvider, step: str, error: Exception) -> SsoError:
    """A request to the provider (`step`: discovery, userinfo, jwks) that failed: try again later."""
    logger.warning("sso %s failed", step, extra={"provider": provider.slug, "error": str(error)})
    return SsoError(
        f"{provider.name} cannot be reached right now. Please try again in a moment.",
        code="sso_provider_unavailable",
        status=502,
    )


class SsoClient(OIDCAuthenticationBackend):
    """The code exchange and ID token verification for one provider."""

    def __init__(self, *, provider: SsoProvider, endpoints: Endpoints) -> None:
        # Not the library's __init__: it reads the one provider of settings.
        self.provider = provider
        self.endpoints = endpoints
        self.OIDC_OP_TOKEN_ENDPOINT = endpoints.token
        self.OIDC_OP_USER_ENDPOINT = endpoints.userinfo
        self.OIDC_OP_JWKS_ENDPOINT = endpoints.jwks
        self.OIDC_RP_CLIENT_ID = provider.client_id
        self.OIDC_RP_CLIENT_SECRET = provider.client_secret
        self.OIDC_RP_SIGN_ALGO = "RS256"
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.UserModel = User

    def get_settings(self, attr: str, *default: Any) -> Any:  # the library's settings, per provider
        values = {"OIDC_TIMEOUT": HTTP_TIMEOUT, "OIDC_VERIFY_SSL": True, "OIDC_TOKEN_USE_BASIC_AUTH": False}
        if attr in values:
            return values[attr]
        return default[0] if default else None

    def authenticate(self, request: Any = None, **credentials: Any) -> None:
        """Never a Django authentication backend (it is not in AUTHENTICATION_BACKENDS): see claims()."""
        return None

    def claims(self, *, request: HttpRequest, code: str, pending: PendingSignIn) -> tuple[dict[str, Any], str]:
        """The verified claims of the person the provider signed in: the ID token's, completed by
        the userinfo endpoint when the token has no email (its `sub` must be the token's); and the
        ID token itself (the hint of a later logout at the provider)."""
        payload = {
            "client_id": self.OIDC_RP_CLIENT_ID,
            "client_secret": self.OIDC_RP_CLIENT_SECRET,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": callback_url(request),
            "code_verifier": pending.code_verifier,
        }
        try:
            tokens = self.get_token(payload)
        except (requests.RequestException, ValueError) as error:
            # The library's HTTPError names the URL and the provider's answer, never our secret.
            logger.warning("sso token request failed", extra={"provider": self.provider.slug, "error": str(error)})
            raise SsoError(
                f"{self.provider.name} did not accept the sign-in. Please start again.",
                code="sso_provider_refused",
                status=502,
            ) from None
        id_token = tokens.get("id_token") if isinstance(tokens, dict) else None
        if not isinstance(id_token, str):
            raise _invalid(self.provider, "no id_token")
        claims = self.verify_token(id_token, nonce=pending.nonce)
        if not claims.get("email") and self.endpoints.userinfo and isinstance(tokens.get("access_token"), str):
            info = self._userinfo(tokens["access_token"], id_token, claims)
            if info.get("sub") != claims["sub"]:  # OpenID Connect Core 5.3.2
                raise _invalid(self.provider, "userinfo sub differs")
            claims = {**info, **claims}
        return claims, id_token

    def _userinfo(self, access_token: str, id_token: str, claims: dict[str, Any]) -> dict[str, Any]:
        try:
            info = self.get_userinfo(access_token, id_token, claims)
        except (requests.RequestException, ValueError, SuspiciousOperation) as error:
            raise _unreachable(self.provider, "userinfo", error) from None
        if not isinstance(info, dict):
            raise _invalid(self.provider, "userinfo not an object")
        return info

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        """The ID token's claims, once everything OpenID Connect Core 3.1.3.7 asks is checked. The
        library's own check verifies the signature and the nonce only (its issue #340)."""
        nonce = kwargs.get("nonce")
        if not nonce:
            raise _invalid(self.provider, "no nonce to compare")  # userinfo as a JWT lands here: unsupported
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid(self.provider, "not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise _invalid(self.provider, f"algorithm {algorithm!r}")
        try:
            key = self.retrieve_matching_jwk(token)  # the library: the JWKS key with the token's kid and alg
        except (requests.RequestException, ValueError) as error:
            raise _unreachable(self.provider, "jwks", error) from None
        except (SuspiciousOperation, KeyError, jwt.PyJWTError):
            raise _invalid(self.provider, "no matching key") from None
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.provider.client_id,
                issuer=self.provider.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.PyJWTError as error:
            raise _invalid(self.provider, type(error).__name__) from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.provider.client_id:
            raise _invalid(self.provider, "azp")  # several audiences: we must be the authorized party
        if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
            raise _invalid(self.provider, "nonce")
        if not isinstance(claims["sub"], str) or not claims["sub"] or len(claims["sub"]) > 255:
            raise _invalid(self.provider, "sub")
        return claims
