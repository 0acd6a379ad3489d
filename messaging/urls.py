"""Thread and reaction routes, spread into /api/v1/ (config/api_urls.py)."""

from django.urls import path

from messaging.api import ReactionApi, ThreadApi

urlpatterns = [
    path("rooms/<str:room_id>/messages/<str:message_id>/thread/", ThreadApi.as_view(), name="api-message-thread"),
    path(
        "rooms/<str:room_id>/messages/<str:message_id>/reactions/",
        ReactionApi.as_view(),
        name="api-message-reactions",
    ),
]
