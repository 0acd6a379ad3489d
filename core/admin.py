"""Admin building blocks: admin pages never write models behind the services' back."""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.http import HttpRequest

from core.errors import ApplicationError

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ServiceAdmin(admin.ModelAdmin):
    """An admin whose writes call services (override save_model / delete_model with `write`). A
    write the service refuses changes nothing and is reported instead of the success message."""

    def write(self, request: HttpRequest, action: Callable[[], object]) -> bool:
        try:
            action()
        except ApplicationError as error:
            request._parley_refused = True  # type: ignore[attr-defined]  # our own marker, read below
            self.message_user(request, error.message, messages.ERROR)
            return False
        return True

    def message_user(
        self, request: HttpRequest, message: "StrOrPromise", level: int | str = messages.INFO, *args: Any, **kwargs: Any
    ) -> None:
        if level == messages.SUCCESS and getattr(request, "_parley_refused", False):
            return
        super().message_user(request, message, level, *args, **kwargs)
