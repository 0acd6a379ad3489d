"""GET /api/v1/audit/export/: the audit log as JSON lines, for site staff (any chain) and a
workspace's owners and admins (its own chain; audit.selectors.may_read). Anyone else, and a chain
the caller may not read: 404, not theirs to know of. Each export is recorded in the log before it
is read.

me/data-export/...: "download all my data" (GDPR), for every signed-in user (audit.data_export)."""

from typing import Annotated, TypedDict

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import data_export, selectors, services
from audit.models import GLOBAL_SCOPE, DataExport
from core.errors import NotFound
from messaging.params import validated
from rooms.api import documented

EXPORT_LIMIT_MAX = 10_000
MEDIA_TYPE = "application/x-ndjson"


class AuditExportParams(serializers.Serializer):
    scope = serializers.CharField(
        max_length=64, default=GLOBAL_SCOPE, help_text="The chain: `global`, or `workspace:<id>` for a workspace's own"
    )
    after_position = serializers.IntegerField(
        min_value=0, default=0, help_text="Only entries after this position: the last line's `position` pages on"
    )
    limit = serializers.IntegerField(min_value=1, max_value=EXPORT_LIMIT_MAX, default=1000)
    since = serializers.DateTimeField(required=False, help_text="Entries at or after this time")
    until = serializers.DateTimeField(required=False, help_text="Entries before this time")
    action = serializers.CharField(
        max_length=64, required=False, allow_blank=True, default="", help_text="Only this action"
    )

    class Meta:
        ref_name = "AuditExportParams"


_ERRORS = {code: shape for code, shape in documented(None, 400, 404).items() if code != 200}


class AuditExportApi(APIView):
    """Audit entries, oldest first, one JSON object a line with its `prev_hash` and `hash`
    (docs/audit.md says how to check them). Site staff, any chain; a workspace's owners and
    admins, its own."""

    @extend_schema(
        parameters=[AuditExportParams],
        responses={
            (200, MEDIA_TYPE): OpenApiResponse(OpenApiTypes.STR, description="JSON lines, one entry each"),
            **_ERRORS,
        },
    )
    def get(self, request):
        user = request.user
        if not selectors.reads_any(user=user):
            raise NotFound()
        params = validated(AuditExportParams, request.query_params)
        if not selectors.may_read(user=user, scope=params["scope"]):
            raise NotFound()
        limit = params.pop("limit")
        lines = services.export_lines(actor=user, via="api", filters=selectors.Filters(**params), limit=limit)
        return HttpResponse("".join(lines), content_type=f"{MEDIA_TYPE}; charset=utf-8")


# -- "download all my data" (GDPR; audit.data_export) ---------------------------------------------


class DataExportPayload(TypedDict):
    id: Annotated[str, OpenApiTypes.UUID]
    status: Annotated[str, "queued, running, ready or failed"]
    progress_done: int
    progress_total: int
    progress_note: str
    size: Annotated[int | None, "Bytes of the zip, once ready"]
    error: str
    created_at: Annotated[str, OpenApiTypes.DATETIME]
    finished_at: Annotated[str | None, OpenApiTypes.DATETIME]


def data_export_payload(export: DataExport) -> DataExportPayload:
    return {
        "id": str(export.pk),
        "status": export.status,
        "progress_done": export.progress_done,
        "progress_total": export.progress_total,
        "progress_note": export.progress_note,
        "size": export.size,
        "error": export.error,
        "created_at": export.created_at.isoformat(),
        "finished_at": export.finished_at.isoformat() if export.finished_at else None,
    }


EXPORT_ID = OpenApiParameter("export_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class DataExportListApi(APIView):
    """Ask for a zip of everything Parley holds about me; built in the background (poll the
    export for its progress, then download it). One at a time: 409 `export_running`."""

    @extend_schema(request=None, responses=documented({202: DataExportPayload}, 409))
    def post(self, request):
        export = data_export.data_export_start(user=request.user)
        return Response(data_export_payload(export), status=status.HTTP_202_ACCEPTED)


class DataExportDetailApi(APIView):
    @extend_schema(parameters=[EXPORT_ID], responses=documented(DataExportPayload, 404))
    def get(self, request, export_id):
        return Response(data_export_payload(data_export.data_export_get(user=request.user, export_id=export_id)))


class DataExportDownloadApi(APIView):
    @extend_schema(
        parameters=[EXPORT_ID],
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The zip"),
            **{code: shape for code, shape in documented(None, 404, 409).items() if code != 200},
        },
    )
    def get(self, request, export_id):
        export, data = data_export.data_export_download(user=request.user, export_id=export_id)
        response = HttpResponse(data, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="parley-data-{export.created_at:%Y%m%d}.zip"'
        return response
