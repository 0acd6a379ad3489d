from typing import cast

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html

from accounts.models import User
from core.admin import ReadOnlyAdmin, ServiceAdmin
from messaging.models import MessageArchive, MessagePartition
from operations import services as ops_services


@admin.register(MessageArchive)
class MessageArchiveAdmin(ServiceAdmin, ReadOnlyAdmin):
    """Archive runs: status per day, with the error of the last failed attempt. Actions queue the
    operators' jobs (operations.services.job_start): verify, restore; progress in Task runs."""

    list_display = ["day", "status", "rows", "size", "attempts", "error_summary", "updated_at"]
    list_filter = ["status"]
    date_hierarchy = "day"
    readonly_fields = [f.name for f in MessageArchive._meta.fields]
    actions = ["verify_days", "restore_days"]

    @admin.display(description="size")
    def size(self, obj):
        return filesizeformat(obj.bytes)

    @admin.display(description="last error")
    def error_summary(self, obj):
        return obj.error[:80]

    def _start(self, request: HttpRequest, job: str, queryset: QuerySet[MessageArchive]) -> None:
        days = list(queryset.values_list("day", flat=True))
        started: list = []
        user = cast(User, request.user)  # admin serves only signed-in staff
        if self.write(request, lambda: started.append(ops_services.job_start(user=user, job=job, days=days))):
            run = started[0]
            link = reverse("admin:operations_taskrun_change", args=[run.pk])
            self.message_user(
                request,
                format_html('Queued: {} of {} day(s). <a href="{}">Follow its progress</a>.', job, len(days), link),
                messages.SUCCESS,
            )

    @admin.action(description="Verify the selected archived days (read back, check checksum and rows)")
    def verify_days(self, request: HttpRequest, queryset: QuerySet[MessageArchive]) -> None:
        self._start(request, "verify", queryset)

    @admin.action(description="Restore the selected archived days into PostgreSQL")
    def restore_days(self, request: HttpRequest, queryset: QuerySet[MessageArchive]) -> None:
        self._start(request, "restore", queryset)


@admin.register(MessagePartition)
class MessagePartitionAdmin(ReadOnlyAdmin):
    """The partitions now in PostgreSQL (row counts are PostgreSQL's estimates)."""

    list_display = ["name", "bounds", "approx_rows", "size"]

    @admin.display(description="size", ordering="total_bytes")
    def size(self, obj):
        return filesizeformat(obj.total_bytes)
