"""Single sign-on's pages: the start of a sign-in (`/sso/<slug>/login/`, a redirect to the
provider) and its end (`/sso/callback/`, the one redirect URI every provider is given).

A mobile app starts the same page in a browser tab with its own redirect URI (one of
SSO_MOBILE_REDIRECT_URIS) and a PKCE challenge; the callback then signs no browser in and sends
the app a one-time code instead, which it exchanges for tokens at POST /api/v1/auth/sso/token/
(sso.api). docs/sso.md."""

import logging
import re
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import auth
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.throttles import SignInAddressThrottle, throttled_for
from sso import selectors, services
from sso.oidc import SsoClient, SsoError, SsoLoginView, discover, take_state

logger = logging.getLogger(__name__)

_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43,128}$")  # a PKCE S256 challenge (base64url of 32 bytes: 43)


class _AppRedirect(HttpResponseRedirect):
    """A redirect to the app's own scheme (e.g. `parley://sso`), configured in settings."""

    def __init__(self, url: str) -> None:
        self.allowed_schemes = [*HttpResponseRedirect.allowed_schemes, url.split(":", 1)[0].lower()]
        super().__init__(url)


def error_page(request: HttpRequest, error: SsoError) -> HttpResponse:
    return render(request, "sso/error.html", {"error": error}, status=error.status)


@never_cache
@require_GET
def login_start(request: HttpRequest, slug: str) -> HttpResponse:
    """Redirects to the provider with a fresh state, nonce and PKCE challenge (sso.oidc)."""
    provider = selectors.provider_for_sign_in(slug)
    if provider is None:
        raise Http404
    mobile = None
    if "redirect_uri" in request.GET or "code_challenge" in request.GET:
        redirect_uri = request.GET.get("redirect_uri", "")
        challenge = request.GET.get("code_challenge", "")
        if (
            redirect_uri not in settings.SSO_MOBILE_REDIRECT_URIS
            or not _CHALLENGE.match(challenge)
            or request.GET.get("code_challenge_method", "S256") != "S256"
        ):
            return error_page(
                request,
                SsoError(
                    "This app's sign-in request is not valid (its redirect URI is not allowed, or its "
                    "code challenge is missing).",
                    code="sso_mobile_invalid",
                ),
            )
        mobile = {"redirect_uri": redirect_uri, "code_challenge": challenge}
    try:
        endpoints = discover(provider)
    except SsoError as error:
        return error_page(request, error)
    return SsoLoginView(provider=provider, endpoints=endpoints, mobile=mobile).get(request)


@require_GET
def workspace_sign_in(request: HttpRequest, slug: str) -> HttpResponse:
    """`/w/<slug>/sign-in/`: a workspace's own sign-in page, offering only the providers linked to
    it (each starts that provider's sign-in, `/sso/<provider>/login/`, and comes back to the
    workspace's members page). A workspace with none, or no such workspace, is a 404: the page
    names a workspace only when it has a sign-in of its own to offer."""
    providers = list(selectors.providers_for_workspace(workspace_slug=slug))
    if not providers:
        raise Http404
    workspace = providers[0].workspace
    assert workspace is not None  # the selector's filter
    context = {"workspace": workspace, "providers": providers, "next": f"/workspaces/{workspace.slug}/members/"}
    return render(request, "sso/workspace_sign_in.html", context)


@never_cache
@require_GET
def callback(request: HttpRequest) -> HttpResponse:
    """The provider sends the browser back here with `code` and `state` (or `error`)."""
    # Each completion costs requests to the provider: limited like password sign-ins (per address).
    if wait := throttled_for(request, [SignInAddressThrottle]):
        return error_page(
            request,
            SsoError(
                f"Too many sign-in attempts. Please wait {max(1, round(wait))} seconds and try again.",
                code="rate_limited",
                status=429,
            ),
        )
    try:
        pending = take_state(request, request.GET.get("state", ""))
    except SsoError as error:
        logger.warning("sso callback refused", extra={"reason": error.code})
        return error_page(request, error)
    provider = selectors.provider_by_id(pending.provider_id)
    if provider is None:  # disabled or removed since the sign-in started
        return error_page(request, SsoError("This sign-in option is not available any more.", code="sso_disabled"))
    try:
        issuer = request.GET.get("iss")
        if issuer is not None and issuer != provider.issuer:  # RFC 9207: the answer is from someone else
            raise SsoError(f"{provider.name} sent a sign-in Parley cannot accept.", code="sso_token_invalid")
        if request.GET.get("error") or not request.GET.get("code"):
            raise SsoError(
                f"{provider.name} did not sign you in ({request.GET.get('error', 'no code')[:64]}).",
                code="sso_provider_refused",
            )
        client = SsoClient(provider=provider, endpoints=discover(provider))
        claims, id_token = client.claims(request=request, code=request.GET["code"], pending=pending)
    except SsoError as error:
        services.sign_in_refused(provider=provider, error=error)
        return error_page(request, error)
    try:
        signed_in = services.sso_sign_in(provider=provider, claims=claims)
    except SsoError as error:  # recorded by the service
        return error_page(request, error)
    if pending.mobile is not None:  # the app's browser tab is not signed in: the app gets a code
        code = services.mobile_code_issue(
            user=signed_in.user, provider=provider, code_challenge=pending.mobile["code_challenge"]
        )
        separator = "&" if "?" in pending.mobile["redirect_uri"] else "?"
        return _AppRedirect(pending.mobile["redirect_uri"] + separator + urlencode({"code": code}))
    # auth.sign_in, with these details (audit.signals); the session's backend is the model backend,
    # which refuses a user deactivated later, at their next request.
    request.audit_sign_in = {"via": "sso", "provider": provider.slug}  # type: ignore[attr-defined]
    auth.login(request, signed_in.user, backend="django.contrib.auth.backends.ModelBackend")
    services.remember_for_logout(session=request.session, provider=provider, id_token=id_token)
    return HttpResponseRedirect(pending.next_url or resolve_url(settings.LOGIN_REDIRECT_URL))
