"""End-to-end encryption routes, spread into /api/v1/ (config/api_urls.py)."""

from django.urls import path

from e2ee.api import DeviceDetailApi, DeviceListApi, RoomEncryptionApi, UserDeviceListApi

urlpatterns = [
    path("e2ee/devices/", DeviceListApi.as_view(), name="api-e2ee-devices"),
    path("e2ee/devices/<str:device_id>/", DeviceDetailApi.as_view(), name="api-e2ee-device"),
    path("e2ee/users/<str:user_id>/devices/", UserDeviceListApi.as_view(), name="api-e2ee-user-devices"),
    path("rooms/<str:room_id>/encryption/", RoomEncryptionApi.as_view(), name="api-room-encryption"),
]
