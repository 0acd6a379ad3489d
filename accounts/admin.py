"""Users in Django admin. Deactivating a user or setting their password closes their open sockets
(accounts.services); users are deactivated, not deleted, here (deleting would drop their
memberships behind rooms.services' back)."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.http import HttpRequest

import audit
from accounts import services
from accounts.models import User
from audit.context import current_user

# Changes to these are recorded in the audit log (a password only as having changed).
_AUDITED = ("username", "is_active", "is_staff", "is_superuser", "groups", "user_permissions")


def _shown(value: object) -> object:
    if hasattr(value, "__iter__") and not isinstance(value, str):  # groups, permissions
        return sorted(str(item) for item in value)
    return value


class PasswordChangeForm(AdminPasswordChangeForm):
    """Django's form (it can also make the password unusable), then the sockets are closed."""

    def save(self, commit: bool = True) -> User:
        user = super().save(commit=commit)
        services.user_credentials_changed(user=user)
        audit.record(action="user.password_set", actor=current_user(), target=user)
        return user


@admin.register(User)
class ParleyUserAdmin(UserAdmin):
    change_password_form = PasswordChangeForm
    list_display = ("username", "display_name", "email", "is_staff", "is_active")
    search_fields = ("username", "display_name", "email")
    actions = ["clear_profile"]

    @admin.action(description="Clear the display name and avatar of the selected users")
    def clear_profile(self, request: HttpRequest, queryset) -> None:
        # Through the services: their sockets hear of it, and the stored picture is deleted.
        for user in queryset:
            services.profile_update(user=user, display_name="")
            services.avatar_remove(user=user)
        self.message_user(request, f"Cleared {len(queryset)} profile(s).")

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: User, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if changed := [name for name in _AUDITED if name in form.changed_data]:
            before = {name: _shown(form.initial.get(name)) for name in changed}
            after = {name: _shown(form.cleaned_data.get(name)) for name in changed}
            action = "user.update" if change else "user.create"
            audit.record(action=action, actor=request.user, target=obj, before=before, after=after)
        if change and "is_active" in form.changed_data and not obj.is_active:
            services.user_credentials_changed(user=obj)
