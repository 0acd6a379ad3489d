"""Boards in Django admin: renames and deletions go through boards.services (announced to the room,
the board's sockets leave it); the document, its log and snapshots are read-only here."""

from typing import cast

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat

from accounts.models import User
from boards import services
from boards.models import Board
from core.admin import ServiceAdmin


@admin.register(Board)
class BoardAdmin(ServiceAdmin):
    list_display = ["title", "room", "created_by", "created_at", "last_sequence", "document_size"]
    search_fields = ["title"]
    fields = ["title", "room", "created_by", "created_at", "last_sequence", "size"]
    readonly_fields = ["room", "created_by", "created_at", "last_sequence", "size"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # boards are made in their rooms, in the product

    @admin.display(description="size", ordering="size")
    def document_size(self, obj: Board) -> str:
        return filesizeformat(obj.size)

    def save_model(self, request: HttpRequest, obj: Board, form, change: bool) -> None:
        if "title" in form.changed_data:
            self.write(request, lambda: services.board_staff_rename(board=obj, title=form.cleaned_data["title"]))

    def delete_model(self, request: HttpRequest, obj: Board) -> None:
        self.write(request, lambda: services.board_staff_delete(board=obj, actor=cast(User, request.user)))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Board]) -> None:
        for board in queryset:
            self.delete_model(request, board)
