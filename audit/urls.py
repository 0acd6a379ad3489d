from django.urls import path

from audit.api import AuditExportApi, DataExportDetailApi, DataExportDownloadApi, DataExportListApi

urlpatterns = [
    path("audit/export/", AuditExportApi.as_view(), name="api-audit-export"),
    path("me/data-export/", DataExportListApi.as_view(), name="api-data-exports"),
    path("me/data-export/<str:export_id>/", DataExportDetailApi.as_view(), name="api-data-export"),
    path("me/data-export/<str:export_id>/download/", DataExportDownloadApi.as_view(), name="api-data-export-download"),
]
