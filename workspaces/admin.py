"""Workspaces in Django admin: staff rename them, change their address and limits, and delete
them, through workspaces.services (audited); memberships are read-only here and invitations can
only be withdrawn (people manage them in the product: invitations, role changes, removals)."""

from functools import partial
from typing import cast

from django.contrib import admin
from django.db.models import QuerySet
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
    fields = ["name", "slug", "is_default", "created_at", *services.LIMIT_FIELDS]
    readonly_fields = ["is_default", "created_at"]
    inlines = [MembershipInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made by their owners, in the product (or the default one, by itself)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        if isinstance(obj, Workspace) and obj.is_default:
            return False  # every new account joins it
        return super().has_delete_permission(request, obj)

    def get_deleted_objects(self, objs, request: HttpRequest):
        """The confirmation page's summary. Not Django's collector: it would load every message of
        every room, and call the rooms (PROTECT) protected; workspace_delete deletes them first."""
        objs = list(objs)
        summary = [
            f"{workspace}: {workspace.rooms.count()} rooms with their messages, boards and files, "
            f"{workspace.memberships.count()} memberships, {workspace.invitations.count()} invitations"
            for workspace in objs
        ]
        return summary, {"workspaces": len(objs)}, set(), []

    def delete_model(self, request: HttpRequest, obj: Workspace) -> None:
        # Admin's own confirmation page (listing what goes) is the confirmation.
        staff = cast(User, request.user)
        self.write(
            request, lambda: services.workspace_delete(actor=staff, workspace=obj, confirm=obj.slug, as_staff=True)
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Workspace]) -> None:
        for workspace in queryset:
            self.delete_model(request, workspace)

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
class WorkspaceInvitationAdmin(ServiceAdmin, ReadOnlyAdmin):
    list_display = ["workspace", "email", "role", "created_by", "created_at", "expires_at", "accepted_at", "revoked_at"]
    list_filter = ["workspace"]
    actions = ["withdraw"]

    @admin.action(description="Withdraw the selected invitations")
    def withdraw(self, request: HttpRequest, queryset: QuerySet[WorkspaceInvitation]) -> None:
        staff = cast(User, request.user)
        for invitation in queryset.select_related("workspace"):
            actor = services.staff_actor(workspace=invitation.workspace, user=staff)
            self.write(request, partial(services.invitation_revoke, actor=actor, invitation_id=invitation.pk))
