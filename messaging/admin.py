from django.contrib import admin
from django.template.defaultfilters import filesizeformat

from core.admin import ReadOnlyAdmin
from messaging.models import MessageArchive, MessagePartition


@admin.register(MessageArchive)
class MessageArchiveAdmin(ReadOnlyAdmin):
    """Archive runs: status per day, with the error of the last failed attempt."""

    list_display = ["day", "status", "rows", "size", "attempts", "error_summary", "updated_at"]
    list_filter = ["status"]
    date_hierarchy = "day"
    readonly_fields = [f.name for f in MessageArchive._meta.fields]

    @admin.display(description="size")
    def size(self, obj):
        return filesizeformat(obj.bytes)

    @admin.display(description="last error")
    def error_summary(self, obj):
        return obj.error[:80]


@admin.register(MessagePartition)
class MessagePartitionAdmin(ReadOnlyAdmin):
    """The partitions now in PostgreSQL (row counts are PostgreSQL's estimates)."""

    list_display = ["name", "bounds", "approx_rows", "size"]

    @admin.display(description="size", ordering="total_bytes")
    def size(self, obj):
        return filesizeformat(obj.total_bytes)
