"""Users in Django admin. Deactivating a user or setting their password closes their open sockets
(accounts.services); users are deactivated, not deleted, here (deleting would drop their
memberships behind rooms.services' back)."""

from typing import cast

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.http import HttpRequest
from django.template.response import TemplateResponse

import audit
from accounts import erasure, services
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
    actions = ["clear_profile", "erase_accounts"]

    @admin.action(description="Clear the display name and avatar of the selected users")
    def clear_profile(self, request: HttpRequest, queryset) -> None:
        # Through the services: their sockets hear of it, and the stored picture is deleted.
        for user in queryset:
            services.profile_update(user=user, display_name="")
            services.avatar_remove(user=user)
        self.message_user(request, f"Cleared {len(queryset)} profile(s).")

    @admin.action(description="Erase the selected accounts (GDPR)…")
    def erase_accounts(self, request: HttpRequest, queryset) -> TemplateResponse | None:
        """After a confirmation page: accounts.erasure.account_erase for each (one path with the
        account page and REST). One's own account is erased from the account page (password)."""
        users = [user for user in queryset if user.pk != request.user.pk]
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Erase accounts",
                "opts": self.model._meta,
                "users": users,
                "ids": [str(user.pk) for user in queryset],
                "skipped_self": len(users) < len(queryset),
                "messages_mode": settings.ERASURE_MESSAGES,
            }
            return TemplateResponse(request, "admin/accounts/erase_confirmation.html", context)
        for user in users:
            erasure.account_erase(actor=cast(User, request.user), user=user, via="admin")
        done = f"Erased {len(users)} account(s); their messages are being changed."
        self.message_user(request, done, messages.SUCCESS)
        return None

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
