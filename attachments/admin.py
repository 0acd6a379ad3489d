from django.contrib import admin

from attachments.models import Attachment


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    """Read-only: attachments change through their message (delete the message to remove one)."""

    list_display = ["name", "room", "uploader", "status", "content_type", "size", "thumbnail", "created_at"]
    list_filter = ["status", "thumbnail"]
    search_fields = ["name", "id", "message_id"]
    readonly_fields = [f.name for f in Attachment._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
