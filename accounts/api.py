from typing import Annotated, TypedDict

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts.models import User
from accounts.services import user_create, user_credentials_changed, user_update_settings, ws_ticket_issue
from core.errors import InvalidInput
from core.throttles import SIGN_IN_THROTTLES, SignUpAddressThrottle
from rooms.api import documented


class MePayload(TypedDict):
    id: int
    username: str
    email: Annotated[str, OpenApiTypes.EMAIL]
    send_read_receipts: Annotated[bool, "Whether others see how far I have read"]


class WsTicket(TypedDict):
    ticket: Annotated[str, "For /ws/?ticket=…; single use"]
    expires_in: Annotated[int, "Seconds it stays valid"]


class TokenPair(TypedDict):
    access: Annotated[str, "Access token (JWT) for `Authorization: Bearer …`; lives 5 minutes"]
    refresh: Annotated[str, "Refresh token; each refresh returns a new one and blacklists the old"]


def me_payload(user) -> MePayload:
    return {
        "id": user.pk,
        "username": user.username,
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

        class Meta:
            ref_name = "MeInput"

    @extend_schema(responses=documented(MePayload))
    def get(self, request):
        return Response(me_payload(request.user))

    @extend_schema(request=Input, responses=documented(MePayload, 400, 403))
    def patch(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(me_payload(user_update_settings(user=request.user, **data.validated_data)))


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
        return Response(status=status.HTTP_205_RESET_CONTENT)


class WsTicketApi(APIView):
    """A single-use ticket for opening /ws/?ticket=..., valid for a few seconds."""

    @extend_schema(request=None, responses=documented(WsTicket, 403))
    def post(self, request):
        ticket, ttl = ws_ticket_issue(user=request.user)
        return Response(WsTicket(ticket=ticket, expires_in=ttl))


@extend_schema(request=TokenObtainPairSerializer, responses=documented(TokenPair, 400, 401, 429, authenticated=False))
class TokenApi(TokenObtainPairView):
    """Sign in: a username and password for an access and a refresh token."""

    throttle_classes = SIGN_IN_THROTTLES


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
