from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.services import user_create, user_credentials_changed, user_update_settings, ws_ticket_issue
from core.errors import InvalidInput


class MeOutput(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()
    send_read_receipts = serializers.BooleanField()


def me_payload(user) -> dict:
    return {
        "id": user.pk,
        "username": user.username,
        "email": user.email,
        "send_read_receipts": user.send_read_receipts,
    }


class SignupThrottle(AnonRateThrottle):
    rate = "20/hour"


class SignupApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    class Input(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        email = serializers.EmailField()
        password = serializers.CharField(max_length=128, write_only=True)

        class Meta:
            ref_name = "SignupInput"

    @extend_schema(request=Input, responses={201: MeOutput})
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

    @extend_schema(responses=MeOutput)
    def get(self, request):
        return Response(me_payload(request.user))

    @extend_schema(request=Input, responses=MeOutput)
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

    @extend_schema(request=Input, responses={205: None})
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

    @extend_schema(
        request=None,
        responses=inline_serializer(
            "WsTicket", {"ticket": serializers.CharField(), "expires_in": serializers.IntegerField()}
        ),
    )
    def post(self, request):
        ticket, ttl = ws_ticket_issue(user=request.user)
        return Response({"ticket": ticket, "expires_in": ttl})
