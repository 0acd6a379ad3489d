from typing import TypeVar

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse_lazy
from django.views.decorators.http import require_GET, require_http_methods

from accounts import avatars, erasure, services
from accounts.forms import (
    AvatarForm,
    EmailForm,
    EraseForm,
    PasswordChangeForm,
    ProfileForm,
    SetPasswordForm,
    SignupForm,
)
from accounts.services import user_create, user_credentials_changed
from core.errors import ApplicationError, RateLimited
from core.throttles import (
    SIGN_IN_THROTTLES,
    SignInAddressThrottle,
    SignUpAddressThrottle,
    address_ident,
    mail_budgets_take,
    throttled_for,
)
from sso import selectors as sso_selectors
from sso import services as sso_services


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and (wait := throttled_for(request, [SignUpAddressThrottle])):
        form = _refused(SignupForm(initial={name: request.POST.get(name, "") for name in ("username", "email")}), wait)
        return render(request, "accounts/signup.html", {"form": form}, status=429)
    if request.method == "POST" and form.is_valid():
        if user := form.apply(user_create, **form.cleaned_data):
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("home")
    return render(request, "accounts/signup.html", {"form": form})


# The account page: four small forms, each posting its own `form` name; each saves through
# accounts.services (the REST API's write path) and comes back here with a notice.
ACCOUNT_FORMS = {"profile": ProfileForm, "avatar": AvatarForm, "email": EmailForm}


@login_required
@require_http_methods(["GET", "POST"])
def account(request):
    user = request.user
    forms_shown: dict[str, forms.Form] = {
        "profile": ProfileForm(initial={"display_name": user.display_name}, prefix="profile"),
        "avatar": AvatarForm(prefix="avatar"),
        "email": EmailForm(initial={"email": user.email}, prefix="email"),
        "password": PasswordChangeForm(user, prefix="password"),
        "erase": EraseForm(prefix="erase"),
    }
    status = 200
    if request.method == "POST":
        name = request.POST.get("form", "")
        if name == "avatar-remove":
            services.avatar_remove(user=user)
            messages.success(request, "Your picture was removed.")
            return redirect("account")
        if name == "password":
            if wait := throttled_for(request, [SignInAddressThrottle]):  # it checks a password
                forms_shown["password"] = _refused(PasswordChangeForm(user, prefix="password"), wait)
                return render(request, "accounts/account.html", {"forms": forms_shown}, status=429)
            password_form = PasswordChangeForm(user, request.POST, prefix="password")
            if password_form.is_valid():
                password_form.save()
                update_session_auth_hash(request, user)  # this browser stays signed in
                messages.success(request, "Your password was changed. Other devices were signed out.")
                return redirect("account")
            form: forms.Form = password_form
        elif name == "erase":
            if wait := throttled_for(request, [SignInAddressThrottle]):  # it checks a password
                forms_shown["erase"] = _refused(EraseForm(prefix="erase"), wait)
                return render(request, "accounts/account.html", {"forms": forms_shown}, status=429)
            erase_form = EraseForm(request.POST, prefix="erase")
            erased = None
            if erase_form.is_valid():
                password = erase_form.cleaned_data["password"]
                erased = erase_form.apply(erasure.account_erase, actor=user, user=user, password=password, via="page")
            form = erase_form
            if erased is not None:
                logout(request)
                messages.success(request, "Your account was erased.")
                return redirect("login")
        elif name in ACCOUNT_FORMS:
            form = ACCOUNT_FORMS[name](request.POST, request.FILES, prefix=name)
            if form.is_valid() and _save(name, form, user, site=request.build_absolute_uri("/")):
                messages.success(request, _SAVED[name])
                return redirect("account")
        else:
            raise Http404
        forms_shown[name] = form
        status = 400
    return render(request, "accounts/account.html", {"forms": forms_shown}, status=status)


_SAVED = {
    "profile": "Your display name was saved.",
    "avatar": "Your picture was saved.",
    # The address changes only from the link mailed to it (accounts.services.email_change_request).
    "email": "Check your new address: we sent it a link that confirms the change.",
}


def _save(name: str, form, user, *, site: str) -> bool:
    """`site`: where links in mails point (the email change's confirmation)."""
    data = form.cleaned_data
    if name == "profile":
        saved = form.apply(services.profile_update, user=user, display_name=data["display_name"])
    elif name == "avatar":
        saved = form.apply(services.avatar_set, user=user, data=data["avatar"].read())
    else:
        saved = form.apply(
            services.email_change_request,
            user=user,
            email=data["email"],
            current_password=data["current_password"],
            site=site,
        )
    return saved is not None


@require_http_methods(["GET", "POST"])
def email_change_confirm(request, token: str):
    """The link mailed to a new address: a GET asks (mail scanners open links, and must not apply
    it), the POST applies it (accounts.services.email_change_confirm). No sign-in needed: the
    signed link names the account, like a password reset's."""
    try:
        if request.method == "POST":
            user = services.email_change_confirm(token=token)
            messages.success(request, f"Your email address is now {user.email}.")
            return redirect("account" if request.user.is_authenticated else "login")
        account, email = services.email_change_pending(token=token)
    except ApplicationError as error:
        return render(request, "accounts/email_change_confirm.html", {"error": error}, status=error.status)
    return render(request, "accounts/email_change_confirm.html", {"account": account, "email": email})


@require_GET
def avatar(request, user_id: int, token: str):
    """An avatar's PNG. Its URL names one image for ever (a new upload gets a new token), so it
    is cached for a year; anyone with the URL may fetch it (accounts.avatars)."""
    png = avatars.read(user_id, token)
    if png is None:
        raise Http404
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["X-Content-Type-Options"] = "nosniff"
    return response


class PasswordResetView(auth_views.PasswordResetView):
    """Django's flow: a link valid for PASSWORD_RESET_TIMEOUT seconds is mailed to every active
    account with that address (and nothing says whether there is one). Limited per client address
    like sign-in, and per email address (THROTTLE_PASSWORD_RESET_ADDRESS, counted whether or not an
    account has it, so the refusal says nothing either), so it cannot be used to flood a mailbox."""

    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/password_reset_email.txt"
    subject_template_name = "accounts/password_reset_subject.txt"
    success_url = reverse_lazy("password-reset-sent")

    def post(self, request, *args, **kwargs):
        if wait := throttled_for(request, [SignInAddressThrottle]):
            form = _refused(self.get_form_class()(initial={"email": request.POST.get("email", "")}), wait)
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        try:
            mail_budgets_take(("password_reset_address", address_ident(form.cleaned_data["email"])))
        except RateLimited as error:
            form.add_error("email", error.message)
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().form_valid(form)


class PasswordResetSentView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_sent.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    form_class = SetPasswordForm  # saves through accounts.services (sockets closed)
    success_url = reverse_lazy("password-reset-complete")


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"


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

    def get_context_data(self, **kwargs):
        # "Sign in with <provider>" buttons (single sign-on, docs/sso.md).
        return super().get_context_data(**kwargs) | {"sso_providers": list(sso_selectors.providers_for_sign_in_page())}

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
        remembered = request.session.get(sso_services.LOGOUT_SESSION_KEY)  # a session SSO made
        response = super().post(request, *args, **kwargs)
        if user.is_authenticated:
            user_credentials_changed(user=user)  # the signed-out browser's sockets close too
        # Signed out of Parley; a session made by SSO goes on to sign out at the provider, which
        # sends the browser back to the sign-in page (docs/sso.md "Signing out"). A page that
        # navigates there, not a redirect: the sign-out form's policy is form-action 'self'.
        back = request.build_absolute_uri(resolve_url(settings.LOGOUT_REDIRECT_URL))
        at_provider = sso_services.provider_logout(remembered=remembered, post_logout_redirect_uri=back)
        if at_provider is None:
            return response
        provider, url = at_provider
        return render(request, "sso/signed_out.html", {"provider_name": provider.name, "provider_url": url})
