from django.contrib import admin
from django.urls import include, path

from accounts import views as account_views
from attachments import urls as attachments_urls
from audit import views as audit_views
from boards import views as board_views
from e2ee import views as e2ee_views
from rooms import views as room_views

urlpatterns = [
    # First: an event stream or a long poll keeps its request for as long as it lasts, and with it
    # the ResolverMatch, which lists every pattern tried before the match (~11 KB per stream when
    # these came near the end: docs/performance.md, "Where an SSE stream's memory goes").
    path("api/v1/", include("transports.urls")),  # events/ (Server-Sent Events), poll/ (long-polling)
    # Then the rest of the API: Django tries the patterns in order, and every page pattern before
    # the API was a failed match for every API request (docs/performance.md, "The API's routes
    # first"). No page route starts with api/.
    path("api/v1/", include("config.api_urls")),
    path("", room_views.home, name="home"),
    path("rooms/new/", room_views.room_create, name="room-create"),
    path("rooms/direct/", room_views.direct_open, name="direct-open"),
    path("rooms/<uuid:room_id>/", room_views.room_detail, name="room"),
    path("rooms/<uuid:room_id>/join/", room_views.room_join, name="room-join"),
    path("rooms/<uuid:room_id>/leave/", room_views.room_leave, name="room-leave"),
    path("rooms/<uuid:room_id>/invite/", room_views.member_invite, name="room-invite"),
    path("rooms/<uuid:room_id>/settings/", room_views.room_settings, name="room-settings"),
    path("rooms/<uuid:room_id>/delete/", room_views.room_delete, name="room-delete"),
    path("rooms/<uuid:room_id>/boards/<uuid:board_id>/", board_views.board_page, name="board"),
    path("signup/", account_views.signup, name="signup"),
    path("login/", account_views.LoginView.as_view(), name="login"),
    path("logout/", account_views.LogoutView.as_view(), name="logout"),
    path("", include("accounts.urls")),  # account page, avatars, password reset
    path("account/devices/", e2ee_views.devices_page, name="e2ee-devices"),  # docs/e2ee.md
    path("", include("sso.urls")),  # single sign-on: sso/<provider>/login/, sso/callback/
    path("", include("workspaces.urls")),  # workspaces/switch/, invitations/<token>/
    path("workspaces/<str:ref>/audit/", audit_views.audit_page, name="workspace-audit"),
    path("workspaces/<str:ref>/audit/download/", audit_views.audit_download, name="workspace-audit-download"),
    path("admin/", admin.site.urls),
    *attachments_urls.local_urlpatterns,  # the local store's uploads and files (attachments/views.py)
]

handler400 = "core.api.bad_request"
handler403 = "core.api.permission_denied"
handler404 = "core.api.not_found"
handler500 = "core.api.server_error"
