from typing import Annotated, NotRequired, TypedDict, cast

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

import audit
from accounts import erasure, services
from accounts.middleware import bearer_token, bearer_user
from accounts.models import DISPLAY_NAME_MAX_LENGTH, User
from accounts.services import (
    user_create,
    user_credentials_changed,
    user_update_settings,
    ws_ticket_aissue,
    ws_ticket_issue,
)
from core.errors import InvalidInput, is_outage
from core.throttles import SIGN_IN_THROTTLES, SignInAddressThrottle, SignUpAddressThrottle
from rooms.api import documented
from rooms.payloads import user_payload


class EmailChangeSent(TypedDict):
    sent_to: Annotated[str, OpenApiTypes.EMAIL]
    expires_in: Annotated[int, "Seconds the link works (once)"]


class MePayload(TypedDict):
    id: int
    username: str
    display_name: Annotated[str, "The name others see: my display name, or my username when none is set"]
    has_display_name: Annotated[bool, "Whether a display name is set (false: `display_name` is the username)"]
    avatar_url: Annotated[str | None, "My avatar, a 128×128 PNG (relative URL); null for none"]
    email: Annotated[str, OpenApiTypes.EMAIL]
    send_read_receipts: Annotated[bool, "Whether others see how far I have read"]
    email_change: NotRequired[
        Annotated[EmailChangeSent, "After a PATCH with `email`: where the confirming link went (`email` is unchanged)"]
    ]


COMPACT = {"separators": (",", ":")}  # as DRF's JSONRenderer writes


class WsTicket(TypedDict):
    ticket: Annotated[str, "For /ws/?ticket=…; single use"]
    expires_in: Annotated[int, "Seconds it stays valid"]


class TokenPair(TypedDict):
    access: Annotated[str, "Access token (JWT) for `Authorization: Bearer …`; lives 5 minutes"]
    refresh: Annotated[str, "Refresh token; each refresh returns a new one and blacklists the old"]


def me_payload(user) -> MePayload:
    shown = user_payload(user)
    return {
        "id": user.pk,
        "username": user.username,
        "display_name": shown["display_name"],
        "has_display_name": bool(user.display_name),
        "avatar_url": shown["avatar_url"],
        "email": user.email,
        "send_read_receipts": user.send_read_receipts,
    }


class SignupApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [SignUpAddressThrottle]

    class Input(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        email = serializers.EmailField()
        password = serializers.CharField(max_length=128, write_only=True)

        class Meta:
            ref_name = "SignupInput"

    @extend_schema(request=Input, responses=documented({201: MePayload}, 400, 429, authenticated=False))
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_create(**data.validated_data)
        return Response(me_payload(user), status=status.HTTP_201_CREATED)


class MeApi(APIView):
    class Input(serializers.Serializer):
        send_read_receipts = serializers.BooleanField(required=False)
        display_name = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=DISPLAY_NAME_MAX_LENGTH,
            help_text='The name others see; "" clears it (the username is shown)',
        )
        email = serializers.CharField(
            required=False,
            max_length=254,
            help_text="A new address: not changed at once; a link that confirms it is mailed there "
            "(and the old address told). Needs `current_password`.",
        )
        current_password = serializers.CharField(
            required=False, max_length=128, write_only=True, trim_whitespace=False, help_text="With `email`"
        )

        class Meta:
            ref_name = "MeInput"

    @extend_schema(responses=documented(MePayload))
    def get(self, request):
        return Response(me_payload(request.user))

    @extend_schema(request=Input, responses=documented(MePayload, 400, 403, 429))
    def patch(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        sent_to = None
        if "email" in fields:  # first: a wrong password or address changes nothing else either
            sent_to = services.email_change_request(
                user=request.user,
                email=fields.pop("email"),
                current_password=fields.pop("current_password", ""),
                site=request.build_absolute_uri("/"),
            )
        fields.pop("current_password", None)
        if "display_name" in fields:
            services.profile_update(user=request.user, display_name=fields.pop("display_name"))
        payload = me_payload(user_update_settings(user=request.user, **fields))
        if sent_to is not None:
            payload["email_change"] = {"sent_to": sent_to, "expires_in": settings.EMAIL_CHANGE_TIMEOUT}
        return Response(payload)

    class EraseInput(serializers.Serializer):
        password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)

        class Meta:
            ref_name = "AccountEraseInput"

    def get_throttles(self):
        # Erasing checks a password: limited like sign-in (per address).
        return [SignInAddressThrottle()] if self.request.method == "DELETE" else super().get_throttles()

    @extend_schema(request=EraseInput, responses=documented({204: None}, 400, 403, 429))
    def delete(self, request):
        """Erase my account (GDPR): my password confirms it. At once: my profile, email, avatar,
        sessions, tokens, inbox and memberships go and I cannot sign in again; then my messages
        become tombstones or anonymous ("Deleted user"), archived days included, as the server's
        ERASURE_MESSAGES says (docs/accounts.md "Erasing an account"). Wrong password: 400
        `wrong_password`, nothing changed."""
        data = self.EraseInput(data=request.data)
        data.is_valid(raise_exception=True)
        erasure.account_erase(
            actor=request.user, user=request.user, password=data.validated_data["password"], via="api"
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class EmailConfirmApi(APIView):
    """Apply a new email address from the link mailed to it (its last path segment is the token;
    the web page `account/email/<token>/` does the same). No sign-in needed: the signed token
    names the account. 400 `email_link_expired` / `email_link_invalid`, 409 `email_link_used`."""

    permission_classes = [AllowAny]
    authentication_classes: list = []  # the token is the credential (credentials sent are ignored)

    class Input(serializers.Serializer):
        token = serializers.CharField(max_length=1000)

        class Meta:
            ref_name = "EmailConfirmInput"

    @extend_schema(request=Input, responses=documented(MePayload, 400, 409, authenticated=False))
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(me_payload(services.email_change_confirm(token=data.validated_data["token"])))


class AvatarApi(APIView):
    """My avatar: upload an image (multipart field `avatar`: PNG, JPEG, GIF or WebP, at most
    AVATAR_MAX_BYTES); the server makes a 128×128 PNG of its centred square."""

    parser_classes = [MultiPartParser]

    class Input(serializers.Serializer):
        avatar = serializers.FileField(help_text="The image")

        class Meta:
            ref_name = "AvatarInput"

    @extend_schema(request={"multipart/form-data": Input}, responses=documented(MePayload, 400, 403))
    def post(self, request):
        return Response(me_payload(services.avatar_set(user=request.user, data=_uploaded(request))))

    @extend_schema(request=None, responses=documented(MePayload, 403))
    def delete(self, request):
        return Response(me_payload(services.avatar_remove(user=request.user)))


def _too_large() -> InvalidInput:
    return InvalidInput(
        f"An avatar may be at most {settings.AVATAR_MAX_BYTES // (1024 * 1024)} MB.",
        code="avatar_too_large",
        fields={"avatar": ["File too large."]},
    )


def _uploaded(request) -> bytes:
    # Refused before the body is parsed when it says it is too big.
    if int(request.META.get("CONTENT_LENGTH") or 0) > settings.AVATAR_MAX_BYTES + 64 * 1024:
        raise _too_large()
    upload = request.data.get("avatar") if hasattr(request.data, "get") else None
    if upload is None or not hasattr(upload, "read"):
        raise InvalidInput("Send the image as the multipart field `avatar`.", fields={"avatar": ["No file."]})
    if upload.size > settings.AVATAR_MAX_BYTES:
        raise _too_large()
    return upload.read()


class PasswordChangeApi(APIView):
    """A new password. Every socket of mine closes (4403) and refresh tokens stay valid; other
    web sessions end. Limited like sign-in (per address): it checks a password."""

    throttle_classes = [SignInAddressThrottle]

    class Input(serializers.Serializer):
        current_password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
        new_password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)

        class Meta:
            ref_name = "PasswordChangeInput"

    @extend_schema(request=Input, responses=documented({204: None}, 400, 403, 429))
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_change(
            user=request.user,
            current_password=data.validated_data["current_password"],
            new_password=data.validated_data["new_password"],
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutApi(APIView):
    """Blacklist a refresh token so it can never mint access tokens again."""

    class Input(serializers.Serializer):
        refresh = serializers.CharField()

        class Meta:
            ref_name = "LogoutInput"

    @extend_schema(request=Input, responses=documented({205: None}, 400, 403))
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            token = RefreshToken(data.validated_data["refresh"])
        except TokenError:
            raise InvalidInput("That refresh token is invalid or expired.", code="token_not_valid") from None
        if token.get("user_id") != str(request.user.pk) and token.get("user_id") != request.user.pk:
            raise InvalidInput("That refresh token is not yours.", code="token_not_valid")
        token.blacklist()
        user_credentials_changed(user=request.user)
        audit.record(action="auth.sign_out", actor=request.user, target=request.user, after={"via": "token"})
        return Response(status=status.HTTP_205_RESET_CONTENT)


# The header DRF's answer carries (APIView.default_response_headers: with one renderer, no Vary),
# on the fast path's too: the same answer whichever path gave it (tests/test_consumer.py).
_DRF_HEADERS = {"Allow": "POST, OPTIONS"}


class WsTicketApi(APIView):
    """A single-use ticket for opening /ws/?ticket=..., valid for a few seconds.

    A client that asks for one does so at every (re)connect: a POST with a Bearer token of an
    active user is answered on the event loop, with no worker thread. The token is checked as the
    socket checks it (accounts.middleware: simplejwt's validation, then the user read in one
    statement for the requests and sockets that come together). Anything else (no token or a bad
    one, a session, another method, PostgreSQL or Redis away) goes through DRF as before, which
    gives the answer and its errors."""

    @classmethod
    def as_view(cls, **initkwargs):
        drf_view = super().as_view(**initkwargs)
        in_thread = sync_to_async(drf_view)

        async def view(request, *args, **kwargs):
            authorization = request.headers.get("Authorization") if request.method == "POST" else None
            raw = bearer_token(authorization.encode("latin1")) if authorization is not None else None
            if raw:
                try:
                    user = await bearer_user(raw)
                    if user.is_authenticated:
                        request.user = user  # for the access log
                        ticket, ttl = await ws_ticket_aissue(user=user)
                        answer = WsTicket(ticket=ticket, expires_in=ttl)
                        return JsonResponse(answer, json_dumps_params=COMPACT, headers=_DRF_HEADERS)
                except Exception as error:
                    if not is_outage(error):
                        raise
            return await in_thread(request, *args, **kwargs)

        # What Django's and DRF's as_view set (the URL conf's readers, drf-spectacular among them,
        # find the class there); csrf_exempt as DRF's views are: its session authentication does
        # its own CSRF check.
        for name in ("view_class", "view_initkwargs", "cls", "initkwargs", "csrf_exempt"):
            setattr(view, name, getattr(drf_view, name))
        return view

    @extend_schema(request=None, responses=documented(WsTicket, 403))
    def post(self, request):
        ticket, ttl = ws_ticket_issue(user=request.user)
        return Response(WsTicket(ticket=ticket, expires_in=ttl))


@extend_schema(request=TokenObtainPairSerializer, responses=documented(TokenPair, 400, 401, 429, authenticated=False))
class TokenApi(TokenObtainPairView):
    """Sign in: a username and password for an access and a refresh token."""

    throttle_classes = SIGN_IN_THROTTLES

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        # simplejwt sends no user_logged_in (its failures do reach audit's user_login_failed).
        user = cast(TokenObtainPairSerializer, self.serializer).user
        audit.record(action="auth.sign_in", actor=user, target=user, after={"via": "token"})
        return response

    def get_serializer(self, *args, **kwargs):
        self.serializer = super().get_serializer(*args, **kwargs)  # who signed in, for post()
        return self.serializer


class _TokenRefreshInput(TokenRefreshSerializer):
    """simplejwt's, but the refresh token of an account deleted since is 401 `no_active_account`
    like a deactivated one's (simplejwt looks the user up with .get(): a 500)."""

    def validate(self, attrs):
        try:
            return super().validate(attrs)
        except User.DoesNotExist:
            raise AuthenticationFailed(self.error_messages["no_active_account"], "no_active_account") from None


@extend_schema(request=TokenRefreshSerializer, responses=documented(TokenPair, 400, 401, authenticated=False))
class TokenRefreshApi(TokenRefreshView):
    """A new access token, and a new refresh token (the one sent is blacklisted)."""

    serializer_class = _TokenRefreshInput
