"""Rooms in Django admin: edits and removals go through rooms.services like everyone else's (events
are sent, sockets follow, the owner and rank rules hold); memberships are otherwise read-only."""

from typing import cast

from django.contrib import admin
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import User
from core.admin import ServiceAdmin
from rooms import services
from rooms.models import Membership, Room


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ("user", "role", "joined_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True  # removal: on the membership's own page (through the service)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _staff(request: HttpRequest) -> User:
    """The admin's user: Django admin serves only signed-in staff, never an anonymous user."""
    return cast(User, request.user)


@admin.register(Room)
class RoomAdmin(ServiceAdmin):
    list_display = ["name", "kind", "workspace", "created_by", "created_at", "last_sequence"]
    list_filter = ["kind", "workspace"]
    search_fields = ["name", "topic"]
    fields = ["name", "topic", "kind", "workspace", "created_by", "created_at", "last_sequence", "direct_key"]
    readonly_fields = ["workspace", "created_by", "created_at", "last_sequence", "direct_key"]
    inlines = [MembershipInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # rooms are made by their owners, in the product

    def save_model(self, request: HttpRequest, obj: Room, form, change: bool) -> None:
        actor = services.staff_actor(room=obj, user=_staff(request))
        self.write(
            request,
            lambda: services.room_update(
                actor=actor, **{name: form.cleaned_data[name] for name in form.changed_data if name in form.fields}
            ),
        )

    def delete_model(self, request: HttpRequest, obj: Room) -> None:
        self.write(request, lambda: services.room_delete(actor=services.staff_actor(room=obj, user=_staff(request))))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        for room in queryset:
            self.delete_model(request, room)


@admin.register(Membership)
class MembershipAdmin(ServiceAdmin):
    list_display = ["room", "user", "role", "joined_at"]
    list_filter = ["role"]
    raw_id_fields = ["room", "user"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        actor = services.staff_actor(room=obj.room, user=_staff(request))
        self.write(request, lambda: services.membership_remove(actor=actor, user=obj.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        for membership in queryset.select_related("room", "user"):
            with transaction.atomic():
                self.delete_model(request, membership)
