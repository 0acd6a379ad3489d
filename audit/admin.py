"""The audit log in Django admin: read-only (PostgreSQL would refuse a change anyway), filtered by
action, target type and date, and exported as JSON lines (the export is recorded too)."""

from typing import cast

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from accounts.models import User
from audit import selectors, services
from audit.models import AuditEntry, DataExport, Erasure
from core.admin import ReadOnlyAdmin


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["position", "created_at", "actor_username", "action", "target_type", "target_id", "ip"]
    list_filter = ["action", "target_type", "scope", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["actor_username", "target_id", "ip", "action"]
    search_help_text = "Actor's user name, target id, IP address or action."
    date_hierarchy = "created_at"
    ordering = ["-scope", "-position"]
    show_full_result_count = False
    fields = readonly_fields = (
        "scope",
        "position",
        "created_at",
        "actor",
        "actor_username",
        "action",
        "target_type",
        "target_id",
        "before",
        "after",
        "ip",
        "prev_hash",
        "hash",
    )
    actions = ["export_json_lines"]

    @admin.action(description="Export selected entries as JSON lines")
    def export_json_lines(self, request: HttpRequest, queryset: QuerySet[AuditEntry]) -> HttpResponse:
        ids = list(queryset.values_list("pk", flat=True))
        scopes = set(queryset.values_list("scope", flat=True)) or {selectors.Filters().scope}
        lines: list[str] = []
        for scope in sorted(scopes):
            lines += services.export_lines(
                actor=cast(User, request.user), via="admin", filters=selectors.Filters(scope=scope), entry_ids=ids
            )
        response = HttpResponse("".join(lines), content_type="application/x-ndjson; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit.jsonl"'
        return response


@admin.register(DataExport)
class DataExportAdmin(ReadOnlyAdmin):
    """Users' "download all my data" exports (GDPR): who, when, progress; the zips are theirs only."""

    list_display = ["created_at", "user", "status", "progress_done", "progress_total", "size", "finished_at"]
    list_filter = ["status"]
    search_fields = ["user__username"]
    fields = readonly_fields = (
        "id",
        "user",
        "status",
        "progress_done",
        "progress_total",
        "progress_note",
        "size",
        "error",
        "created_at",
        "finished_at",
    )


@admin.register(Erasure)
class ErasureAdmin(ReadOnlyAdmin):
    """Erased accounts (GDPR; accounts.erasure): when, how (delete or anonymise), and how far the
    change of their messages got. Erasing an account again (Users › action) resumes a failed one."""

    list_display = ["created_at", "user", "mode", "by_staff", "status", "messages", "archived_days", "finished_at"]
    list_filter = ["status", "mode"]
    fields = readonly_fields = (
        "user",
        "mode",
        "by_staff",
        "status",
        "messages",
        "archived_messages",
        "archived_days",
        "error",
        "created_at",
        "finished_at",
    )
