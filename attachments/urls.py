"""Attachment routes: `urlpatterns` spread into /api/v1/ (config/api_urls.py), `local_urlpatterns` into
the site's root (config/urls.py)."""

from django.urls import path

from attachments import views
from attachments.api import AttachmentCompleteApi, AttachmentDetailApi, AttachmentDownloadApi, AttachmentListApi

urlpatterns = [
    path("rooms/<str:room_id>/attachments/", AttachmentListApi.as_view(), name="api-room-attachments"),
    path(
        "rooms/<str:room_id>/attachments/<str:attachment_id>/",
        AttachmentDetailApi.as_view(),
        name="api-room-attachment",
    ),
    path(
        "rooms/<str:room_id>/attachments/<str:attachment_id>/complete/",
        AttachmentCompleteApi.as_view(),
        name="api-room-attachment-complete",
    ),
    path(
        "rooms/<str:room_id>/attachments/<str:attachment_id>/download/",
        AttachmentDownloadApi.as_view(),
        name="api-room-attachment-download",
    ),
]

# The local store (no S3 bucket configured: attachments/views.py), outside /api/: it stands in for
# the store, not for Parley's API (no session, no token; the signed URL is the permission).
local_urlpatterns = [
    path("attachments/local/upload/<str:token>/", views.local_upload, name="attachment-local-upload"),
    path("attachments/local/files/<str:token>/", views.local_file, name="attachment-local-file"),
]
