"""Workspaces in Django admin: staff rename them and set their limits through
workspaces.services (audited); memberships and invitations are read-only here (people manage them
in the product: invitations, role changes, removals)."""

from typing import cast

from django.contrib import admin
from django.http import HttpRequest

from accounts.models import User
from core.admin import ReadOnlyAdmin, ServiceAdmin
from workspaces import services
from workspaces.models import Workspace, WorkspaceInvitation, WorkspaceMembership


class MembershipInline(admin.TabularInline):
    model = WorkspaceMembership
    extra = 0
    fields = ("user", "role", "joined_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Workspace)
class WorkspaceAdmin(ServiceAdmin):
    list_display = ["name", "slug", "is_default", "created_at", "max_rooms", "max_boards"]
    search_fields = ["name", "slug"]
    fields = ["name", "slug", "is_default", "created_at", *services.SETTINGS_FIELDS[1:]]
    readonly_fields = ["slug", "is_default", "created_at"]
    inlines = [MembershipInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made by their owners, in the product (or the default one, by itself)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # deleting a workspace (its rooms first) is future work: docs/workspaces.md

    def save_model(self, request: HttpRequest, obj: Workspace, form, change: bool) -> None:
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in services.SETTINGS_FIELDS}
        self.write(
            request,
            lambda: services.workspace_settings_update(actor=cast(User, request.user), workspace=obj, changes=changes),
        )


@admin.register(WorkspaceMembership)
class WorkspaceMembershipAdmin(ReadOnlyAdmin):
    list_display = ["workspace", "user", "role", "joined_at"]
    list_filter = ["role", "workspace"]
    raw_id_fields = ["workspace", "user"]


@admin.register(WorkspaceInvitation)
class WorkspaceInvitationAdmin(ReadOnlyAdmin):
    list_display = ["workspace", "email", "role", "created_by", "created_at", "expires_at", "accepted_at"]
    list_filter = ["workspace"]
