"""Single sign-on for mobile apps: the one-time code of the sign-in page, exchanged for JWTs."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.api import TokenPair
from core.throttles import SignInAddressThrottle
from rooms.api import documented
from sso import services


class SsoTokenApi(APIView):
    """A mobile app's single sign-on, last step: the one-time code the sign-in page sent to the app's
    redirect URI, and the PKCE verifier of the challenge the app started it with, for a token pair
    (docs/sso.md "Mobile"). A code works once, for 60 seconds; 400 `sso_code_invalid` otherwise."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [SignInAddressThrottle]

    class Input(serializers.Serializer):
        code = serializers.CharField(max_length=128)
        code_verifier = serializers.CharField(max_length=128)

        class Meta:
            ref_name = "SsoTokenInput"

    @extend_schema(request=Input, responses=documented({200: TokenPair}, 400, 429, authenticated=False))
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.mobile_code_redeem(**data.validated_data)
        refresh = RefreshToken.for_user(user)
        return Response(TokenPair(access=str(refresh.access_token), refresh=str(refresh)))
