"""The account's web forms. They check what the reader typed (Django's fields and password
validators) and save through accounts.services, the one write path the REST API uses too."""

from collections.abc import Callable
from typing import Any, TypeVar

from django import forms
from django.conf import settings
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import password_validation

from accounts import services
from accounts.models import DISPLAY_NAME_MAX_LENGTH, User
from core.errors import ApplicationError

T = TypeVar("T")


def password_rules() -> str:
    """The password validators' rules as an HTML list, shown under every new-password field
    before anything is submitted."""
    return password_validation.password_validators_help_text_html()


class ServiceForm(forms.Form):
    """A form whose save() calls a service: the service's refusal (ApplicationError) becomes the
    form's errors, on the fields it names."""

    def apply(self, call: Callable[..., T], **kwargs: Any) -> T | None:
        """call(**kwargs)'s result, or None when it refused (then the form has its errors)."""
        try:
            return call(**kwargs)
        except ApplicationError as error:
            for name, messages in (error.fields or {"__all__": [error.message]}).items():
                for message in messages:
                    self.add_error(name if name in self.fields else None, message)
            return None


class SignupForm(ServiceForm):
    username = forms.CharField(
        max_length=150,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username", "autocapitalize": "none"}),
        help_text="Letters, digits and @ . + - _ only. People @mention you by it.",
    )
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}), strip=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["password"].help_text = password_rules()


class ProfileForm(ServiceForm):
    display_name = forms.CharField(
        label="Display name",
        max_length=DISPLAY_NAME_MAX_LENGTH,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "nickname"}),
        help_text="What others see next to your messages. Leave it empty to show your username.",
    )


class AvatarForm(ServiceForm):
    avatar = forms.FileField(
        label="Picture",
        widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg,image/gif,image/webp"}),
        help_text="A PNG, JPEG, GIF or WebP image; its centre is cut to a square.",
    )

    def clean_avatar(self):
        upload = self.cleaned_data["avatar"]
        if upload.size > settings.AVATAR_MAX_BYTES:
            raise forms.ValidationError(f"Choose an image of at most {settings.AVATAR_MAX_BYTES // (1024 * 1024)} MB.")
        return upload


class EmailForm(ServiceForm):
    email = forms.EmailField(label="Email", widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    current_password = forms.CharField(
        label="Current password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text="Password resets are sent to this address, so changing it needs your password.",
    )


class EraseForm(ServiceForm):
    """Erase the account (accounts.erasure): the password and an explicit confirmation."""

    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    confirm = forms.BooleanField(
        label="I understand that my account and what I wrote are erased for good",
        error_messages={"required": "Tick the box to confirm."},
    )

    @property
    def messages_mode(self) -> str:
        """What becomes of the messages (ERASURE_MESSAGES), for the page to say so."""
        return settings.ERASURE_MESSAGES


class PasswordChangeForm(auth_forms.PasswordChangeForm):
    """Django's (the old password, the new one twice, the validators), saved by the service: every
    socket of the user closes and other sessions end."""

    # Django's new_password1 shows the validators' rules (password_rules) before submit.

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["old_password"].widget.attrs.pop("autofocus", None)  # one form of several on the page

    def save(self, commit: bool = True) -> User:
        return services.user_set_password(user=self.user, password=self.cleaned_data["new_password1"])


class SetPasswordForm(auth_forms.SetPasswordForm):
    """The password reset's new password (Django's form and flow), saved by the service."""

    # Django's new_password1 shows the validators' rules (password_rules) before submit.

    def save(self, commit: bool = True) -> User:
        return services.user_set_password(user=self.user, password=self.cleaned_data["new_password1"])
