from django.contrib import admin

from rooms.models import Membership, Room


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "created_by", "created_at", "last_sequence"]
    list_filter = ["kind"]
    search_fields = ["name", "topic"]
    readonly_fields = ["last_sequence", "direct_key", "created_at"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["room", "user", "role", "joined_at"]
    list_filter = ["role"]
    raw_id_fields = ["room", "user"]
