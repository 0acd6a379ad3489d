from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from accounts import urls as account_urls
from accounts.api import LogoutApi, MeApi, SignupApi, TokenApi, TokenRefreshApi, WsTicketApi
from attachments import urls as attachments_urls
from audit import urls as audit_urls
from boards import urls as boards_urls
from e2ee import urls as e2ee_urls
from messaging import urls as messaging_urls
from messaging.api import (
    ChangeListApi,
    MessageDetailApi,
    MessageListApi,
    MessageReceiptsApi,
    MessageRevisionListApi,
    ReceiptApi,
)
from notifications import urls as notifications_urls
from presence.api import RoomPresenceApi, RoomTypingApi
from rooms.api import (
    DirectRoomApi,
    MemberDetailApi,
    MemberListApi,
    RoomDetailApi,
    RoomJoinApi,
    RoomLeaveApi,
    RoomListApi,
    RoomOwnerApi,
)
from search import urls as search_urls
from simulator import urls as simulator_urls
from sso import urls as sso_urls
from workspaces import urls as workspaces_urls

urlpatterns = [
    path("auth/signup/", SignupApi.as_view(), name="api-signup"),
    path("auth/token/", TokenApi.as_view(), name="api-token"),
    path("auth/token/refresh/", TokenRefreshApi.as_view(), name="api-token-refresh"),
    path("auth/logout/", LogoutApi.as_view(), name="api-logout"),
    path("auth/ws-ticket/", WsTicketApi.as_view(), name="api-ws-ticket"),
    *sso_urls.api_urlpatterns,  # auth/sso/token/ (a mobile app's single sign-on: docs/sso.md)
    path("me/", MeApi.as_view(), name="api-me"),
    *workspaces_urls.api_urlpatterns,  # workspaces/, members, invitations (workspaces/urls.py)
    *account_urls.api_urlpatterns,  # me/avatar/, me/password/ (accounts/urls.py)
    path("rooms/", RoomListApi.as_view(), name="api-rooms"),
    path("rooms/direct/", DirectRoomApi.as_view(), name="api-rooms-direct"),  # before rooms/<room_id>/
    path("rooms/<str:room_id>/", RoomDetailApi.as_view(), name="api-room"),
    path("rooms/<str:room_id>/join/", RoomJoinApi.as_view(), name="api-room-join"),
    path("rooms/<str:room_id>/leave/", RoomLeaveApi.as_view(), name="api-room-leave"),
    path("rooms/<str:room_id>/owner/", RoomOwnerApi.as_view(), name="api-room-owner"),
    path("rooms/<str:room_id>/members/", MemberListApi.as_view(), name="api-room-members"),
    path("rooms/<str:room_id>/members/<str:user_id>/", MemberDetailApi.as_view(), name="api-room-member"),
    path("rooms/<str:room_id>/messages/", MessageListApi.as_view(), name="api-room-messages"),
    path("rooms/<str:room_id>/messages/<str:message_id>/", MessageDetailApi.as_view(), name="api-message"),
    path(
        "rooms/<str:room_id>/messages/<str:message_id>/revisions/",
        MessageRevisionListApi.as_view(),
        name="api-message-revisions",
    ),
    path(
        "rooms/<str:room_id>/messages/<str:message_id>/receipts/",
        MessageReceiptsApi.as_view(),
        name="api-message-receipts",
    ),
    *messaging_urls.urlpatterns,  # messages/<message>/thread/ and reactions/ (messaging/urls.py)
    path("rooms/<str:room_id>/changes/", ChangeListApi.as_view(), name="api-room-changes"),
    path("rooms/<str:room_id>/receipts/", ReceiptApi.as_view(), name="api-room-receipts"),
    path("rooms/<str:room_id>/presence/", RoomPresenceApi.as_view(), name="api-room-presence"),
    path("rooms/<str:room_id>/typing/", RoomTypingApi.as_view(), name="api-room-typing"),
    *boards_urls.urlpatterns,  # rooms/<room>/boards/, boards/... (boards/urls.py)
    *simulator_urls.urlpatterns,  # simulator/, boards/<board>/simulations/, simulations/... (simulator/urls.py)
    *search_urls.urlpatterns,  # search/ (full-text search over my rooms' messages)
    *attachments_urls.urlpatterns,  # rooms/<room>/attachments/... (attachments/urls.py)
    *notifications_urls.urlpatterns,  # notifications/ (the inbox, levels per room: docs/notifications.md)
    *audit_urls.urlpatterns,  # audit/export/ (site staff: the audit log as JSON lines)
    *e2ee_urls.urlpatterns,  # e2ee/devices/, e2ee/users/<user>/devices/, rooms/<room>/encryption/ (docs/e2ee.md)
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
]
