"""GET /api/v1/audit/export/: the audit log as JSON lines, for site staff only (anyone else: 404,
the endpoint is not theirs to know of). Each export is recorded in the log before it is read."""

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from audit import selectors, services
from audit.models import GLOBAL_SCOPE
from core.errors import NotFound
from messaging.params import validated
from rooms.api import documented

EXPORT_LIMIT_MAX = 10_000
MEDIA_TYPE = "application/x-ndjson"


class AuditExportParams(serializers.Serializer):
    scope = serializers.CharField(max_length=64, default=GLOBAL_SCOPE, help_text="The chain (today only `global`)")
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
    (docs/audit.md says how to check them). Site staff only."""

    @extend_schema(
        parameters=[AuditExportParams],
        responses={
            (200, MEDIA_TYPE): OpenApiResponse(OpenApiTypes.STR, description="JSON lines, one entry each"),
            **_ERRORS,
        },
    )
    def get(self, request):
        user = request.user
        if not (user.is_active and user.is_staff):
            raise NotFound()
        params = validated(AuditExportParams, request.query_params)
        limit = params.pop("limit")
        lines = services.export_lines(actor=user, via="api", filters=selectors.Filters(**params), limit=limit)
        return HttpResponse("".join(lines), content_type=f"{MEDIA_TYPE}; charset=utf-8")
