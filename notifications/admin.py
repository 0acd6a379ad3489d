"""Notifications in Django admin: read-only (the inbox is written by notifications.services alone)."""

from django.contrib import admin
from django.http import HttpRequest

from notifications.models import Notification, RoomSetting


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["user", "kind", "room", "actor", "created_at", "read_at"]
    list_filter = ["kind"]
    list_select_related = ["user", "room", "actor"]
    raw_id_fields = ["user", "room", "actor"]


@admin.register(RoomSetting)
class RoomSettingAdmin(ReadOnlyAdmin):
    list_display = ["user", "room", "level"]
    list_filter = ["level"]
    list_select_related = ["user", "room"]
    raw_id_fields = ["user", "room"]
