"""Pages: switching the current workspace (the sidebar's switcher), an invitation's page, the page
of an account in no workspace (with a form to create one), and a workspace's members page.
Writes go through workspaces.services, like the REST API."""

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import User
from core.errors import ApplicationError, NotFound
from workspaces import selectors, services


def _user(request: HttpRequest) -> User:
    return cast(User, request.user)  # login_required: never anonymous here


def remember(request: HttpRequest, workspace_id: int) -> None:
    """Make a workspace the session's current one (the room pages, REST calls of the web client)."""
    if request.session.get(selectors.SESSION_KEY) != workspace_id:
        request.session[selectors.SESSION_KEY] = workspace_id


@require_POST
@login_required
def workspace_switch(request: HttpRequest) -> HttpResponse:
    try:
        membership = selectors.membership_get(user=_user(request), workspace=request.POST.get("workspace", ""))
    except NotFound:
        messages.error(request, "You are not a member of that workspace.")
        return redirect("home")
    remember(request, membership.workspace_id)
    return redirect("home")


def no_workspace_page(request: HttpRequest, *, status: int = 200) -> HttpResponse:
    """What an account in no workspace sees instead of its rooms (rooms.views.home): a form to
    create a workspace, and the invitations mailed to its address."""
    invitations = [
        (invitation, services.invitation_token(invitation))
        for invitation in selectors.invitations_for_email(email=_user(request).email)[:20]
    ]
    return render(request, "workspaces/none.html", {"invitations": invitations}, status=status)


@require_POST
@login_required
def workspace_new(request: HttpRequest) -> HttpResponse:
    """Create a workspace (I own it) and make it current."""
    try:
        membership = services.workspace_create(
            creator=_user(request), name=request.POST.get("name", ""), slug=request.POST.get("slug", "")
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("home")
    remember(request, membership.workspace_id)
    messages.success(request, f"You created {membership.workspace.name}.")
    return redirect("home")


@require_http_methods(["GET", "POST"])
@login_required
def invitation_page(request: HttpRequest, token: str) -> HttpResponse:
    """GET: what the invitation is for, with a Join button. POST: join, and make it current."""
    try:
        invitation = services.invitation_from_token(token)
        if request.method == "POST":
            membership = services.invitation_accept(user=_user(request), token=token)
            remember(request, membership.workspace_id)
            messages.success(request, f"You joined {membership.workspace.name}.")
            return redirect("home")
    except ApplicationError as error:
        return render(request, "workspaces/invitation.html", {"error": error.message}, status=error.status)
    return render(request, "workspaces/invitation.html", {"invitation": invitation, "token": token})
