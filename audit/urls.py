from django.urls import path

from audit.api import AuditExportApi

urlpatterns = [
    path("audit/export/", AuditExportApi.as_view(), name="api-audit-export"),
]
