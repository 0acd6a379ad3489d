from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts.api import LogoutApi, MeApi, SignupApi, WsTicketApi
from messaging.api import MessageListApi
from rooms.api import MemberDetailApi, MemberListApi, RoomDetailApi, RoomJoinApi, RoomLeaveApi, RoomListApi

urlpatterns = [
    path("auth/signup/", SignupApi.as_view(), name="api-signup"),
    path("auth/token/", TokenObtainPairView.as_view(), name="api-token"),
    path("auth/token/refresh/", TokenRefreshView.as_view(), name="api-token-refresh"),
    path("auth/logout/", LogoutApi.as_view(), name="api-logout"),
    path("auth/ws-ticket/", WsTicketApi.as_view(), name="api-ws-ticket"),
    path("me/", MeApi.as_view(), name="api-me"),
    path("rooms/", RoomListApi.as_view(), name="api-rooms"),
    path("rooms/<str:room_id>/", RoomDetailApi.as_view(), name="api-room"),
    path("rooms/<str:room_id>/join/", RoomJoinApi.as_view(), name="api-room-join"),
    path("rooms/<str:room_id>/leave/", RoomLeaveApi.as_view(), name="api-room-leave"),
    path("rooms/<str:room_id>/members/", MemberListApi.as_view(), name="api-room-members"),
    path("rooms/<str:room_id>/members/<str:user_id>/", MemberDetailApi.as_view(), name="api-room-member"),
    path("rooms/<str:room_id>/messages/", MessageListApi.as_view(), name="api-room-messages"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
]
