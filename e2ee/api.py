"""REST views of end-to-end encryption (docs/e2ee.md): device keys, and turning a direct room's
encryption on. Sending encrypted messages is the ordinary send (`content` is then an envelope)."""

from typing import TypedDict

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import json_object
from e2ee import selectors, services
from e2ee.payloads import DevicePayload, device_payload
from rooms.api import ROOM_ID, documented
from rooms.payloads import RoomPayload, room_payload
from rooms.selectors import membership_get

DEVICE_ID = OpenApiParameter("device_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
USER_ID = OpenApiParameter("user_id", int, OpenApiParameter.PATH, description="User id")


class DeviceList(TypedDict):
    results: list[DevicePayload]


class DeviceListApi(APIView):
    """GET: my devices' keys, revoked ones included. POST: publish this device's public key."""

    class Input(serializers.Serializer):
        public_key = serializers.CharField(max_length=200, help_text="ECDH P-256 public key: SPKI DER, base64")
        # The ignore: a Serializer is a Field, whose `label` this field shadows (only in the class body).
        label = serializers.CharField(  # type: ignore[assignment]
            max_length=80, required=False, allow_blank=True, help_text="e.g. the browser"
        )

        class Meta:
            ref_name = "DeviceRegisterInput"

    @extend_schema(operation_id="e2ee_devices_mine", responses=documented(DeviceList))
    def get(self, request):
        devices = selectors.devices_of(user=request.user)
        return Response(DeviceList(results=[device_payload(d) for d in devices]))

    @extend_schema(
        operation_id="e2ee_devices_register",
        request=Input,
        responses=documented(
            {
                201: OpenApiResponse(DevicePayload, "Registered"),
                200: OpenApiResponse(DevicePayload, "This key was registered already: its device"),
            },
            400,
            409,
        ),
    )
    def post(self, request):
        data = json_object(request)
        device, created = services.device_register(
            user=request.user, public_key=data.get("public_key"), label=data.get("label")
        )
        return Response(device_payload(device), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@extend_schema(parameters=[DEVICE_ID])
class DeviceDetailApi(APIView):
    @extend_schema(operation_id="e2ee_devices_revoke", responses=documented(DevicePayload, 404))
    def delete(self, request, device_id):
        device = services.device_revoke(user=request.user, device_id=device_id)
        return Response(device_payload(device))


@extend_schema(parameters=[USER_ID])
class UserDeviceListApi(APIView):
    """A person's device keys, for wrapping message keys for them: only people I share a workspace
    with (anyone else is `user_not_found`)."""

    @extend_schema(operation_id="e2ee_user_devices", responses=documented(DeviceList, 404))
    def get(self, request, user_id):
        devices = selectors.user_devices(viewer=request.user, user_ref=user_id)
        return Response(DeviceList(results=[device_payload(d) for d in devices]))


@extend_schema(parameters=[ROOM_ID])
class RoomEncryptionApi(APIView):
    """Turn end-to-end encryption on in a direct room, for good (either member; doing it again
    changes nothing). Its notice is the room's next message (`e2ee.kind` "enabled")."""

    @extend_schema(
        operation_id="rooms_encryption_enable", request=None, responses=documented(RoomPayload, 400, 403, 404)
    )
    def post(self, request, room_id):
        room, _notice = services.room_encryption_enable(user=request.user, room_id=room_id)
        membership = membership_get(room_id=room.pk, user=request.user)
        return Response(room_payload(room, role=membership.role))
