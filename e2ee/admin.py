from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from e2ee import services
from e2ee.models import Device


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    """Device keys are published by the devices themselves; staff may only look and revoke one
    (a lost laptop), through the same service as its owner."""

    list_display = ["id", "user", "label", "created_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["user__username", "label"]
    readonly_fields = ["id", "user", "public_key", "label", "created_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Revoke the selected devices")
    def revoke(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        for device in queryset.select_related("user"):
            services.device_revoke(user=device.user, device_id=device.pk, staff=request.user)  # type: ignore[arg-type]
        self.message_user(request, f"Revoked {queryset.count()} device(s).", messages.SUCCESS)
