from typing import TypeVar

from django import forms
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.services import user_create, user_credentials_changed
from core.errors import ApplicationError
from core.throttles import SIGN_IN_THROTTLES, SignUpAddressThrottle, throttled_for


class SignupForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autofocus": True}))
    email = forms.EmailField()
    password = forms.CharField(widget=forms.PasswordInput, strip=False)


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and (wait := throttled_for(request, [SignUpAddressThrottle])):
        form = _refused(SignupForm(initial={name: request.POST.get(name, "") for name in ("username", "email")}), wait)
        return render(request, "accounts/signup.html", {"form": form}, status=429)
    if request.method == "POST" and form.is_valid():
        try:
            user = user_create(**form.cleaned_data)
        except ApplicationError as error:
            for name, messages in (error.fields or {"__all__": [error.message]}).items():
                for message in messages:
                    form.add_error(name if name in form.fields else None, message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("home")
    return render(request, "accounts/signup.html", {"form": form})


FormT = TypeVar("FormT", bound=forms.Form)


def _refused(form: FormT, wait: float) -> FormT:
    """An unbound form (nothing validated: that would check the password being limited) that says
    to wait."""
    form.cleaned_data = {}  # add_error expects a validated form
    form.add_error(None, f"Too many attempts. Please wait {max(1, round(wait))} seconds and try again.")
    return form


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        # The same limits as the REST sign-in (core.throttles): per address and per account name.
        if wait := throttled_for(request, SIGN_IN_THROTTLES):
            # Not validated: that would check the password, which is what is being limited.
            form = _refused(
                self.get_form_class()(request, initial={"username": request.POST.get("username", "")}), wait
            )
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)


class LogoutView(auth_views.LogoutView):
    def post(self, request, *args, **kwargs):
        user = request.user
        response = super().post(request, *args, **kwargs)
        if user.is_authenticated:
            user_credentials_changed(user=user)  # the signed-out browser's sockets close too
        return response
