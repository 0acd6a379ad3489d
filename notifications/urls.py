"""Notification routes, spread into /api/v1/ (config/api_urls.py)."""

from django.urls import path

from notifications.api import (
    NotificationListApi,
    NotificationReadApi,
    NotificationsReadApi,
    RoomLevelApi,
    RoomLevelListApi,
)

urlpatterns = [
    path("notifications/", NotificationListApi.as_view(), name="api-notifications"),
    path("notifications/read/", NotificationsReadApi.as_view(), name="api-notifications-read"),
    path("notifications/rooms/", RoomLevelListApi.as_view(), name="api-notification-levels"),
    path("notifications/rooms/<str:room_id>/", RoomLevelApi.as_view(), name="api-notification-level"),
    path("notifications/<str:notification_id>/read/", NotificationReadApi.as_view(), name="api-notification-read"),
]
