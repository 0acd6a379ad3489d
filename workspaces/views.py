"""Pages: switching the current workspace (the sidebar's switcher), an invitation's page, the page
of an account in no workspace (with a form to create one), and a workspace's members page.
Writes go through workspaces.services, like the REST API."""

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import User
from core.errors import ApplicationError, NotFound
from rooms.selectors import user_find
from workspaces import selectors, services
from workspaces.models import WorkspaceMembership


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


# -- the members page ------------------------------------------------------------------------------


def _mine(request: HttpRequest, ref: str) -> WorkspaceMembership:
    try:
        return selectors.membership_get(user=_user(request), workspace=ref)
    except NotFound:
        raise Http404 from None


def _grantable(actor: WorkspaceMembership) -> list[tuple[str, str]]:
    """The roles `actor` may give (services._require_can_grant's rule, for the forms' choices)."""
    if actor.role == services.Role.OWNER:
        return list(services.Role.choices)
    below = services.RANK[actor.role]
    return [(value, label) for value, label in services.Role.choices if services.RANK[value] < below]


@require_http_methods(["GET"])
@login_required
def members_page(request: HttpRequest, ref: str) -> HttpResponse:
    """A workspace's members and roles; for owners and admins also the forms to change roles,
    remove people, invite, and withdraw invitations; for owners its name, address and deletion;
    for everyone, leaving. Plain forms posting to workspace_manage."""
    actor = _mine(request, ref)
    manager = actor.role in services.MANAGING_ROLES
    rows = []
    for member in selectors.workspace_members(workspace=actor.workspace):
        outranked = actor.role == services.Role.OWNER or services.RANK[member.role] < services.RANK[actor.role]
        rows.append({"m": member, "manageable": manager and outranked and member.user_id != actor.user_id})
    invitations = []
    if manager:
        base_url = request.build_absolute_uri("/")
        for invitation in services.invitations_list(actor=actor)[:200]:
            url = (
                ""
                if invitation.email
                else services.invitation_url(base_url=base_url, token=services.invitation_token(invitation))
            )
            invitations.append({"i": invitation, "url": url})
    remember(request, actor.workspace_id)
    return render(
        request,
        "workspaces/members.html",
        {
            "me": actor,
            "workspace": actor.workspace,
            "rows": rows,
            "manager": manager,
            "owner": actor.role == services.Role.OWNER,
            "roles": _grantable(actor),
            "invite_roles": [choice for choice in _grantable(actor) if choice[0] != services.Role.OWNER],
            "invitations": invitations,
        },
    )


@require_POST
@login_required
def workspace_manage(request: HttpRequest, ref: str) -> HttpResponse:
    """The members page's forms, by `action`: role, remove, invite, withdraw, rename, delete,
    leave. Each calls its service; a refusal comes back as a message on the page."""
    actor = _mine(request, ref)
    action = request.POST.get("action", "")
    post = request.POST
    back = reverse("workspace-members", kwargs={"ref": actor.workspace.slug})
    try:
        if action == "role":
            user = user_find(user_ref=post.get("user", ""), workspace_id=actor.workspace_id)
            services.member_role_change(actor=actor, user=user, role=post.get("role"))
            messages.success(request, f"{user.get_username()} is now {post.get('role')}.")
        elif action == "remove":
            user = user_find(user_ref=post.get("user", ""), workspace_id=actor.workspace_id)
            services.member_remove(actor=actor, user=user)
            messages.success(request, f"{user.get_username()} was removed from {actor.workspace.name}.")
        elif action == "invite":
            base_url = request.build_absolute_uri("/")
            invitation, token = services.invitation_create(
                actor=actor, email=post.get("email", ""), role=post.get("role", "member"), base_url=base_url
            )
            if invitation.email:
                messages.success(request, f"An invitation was sent to {invitation.email}.")
            else:
                url = services.invitation_url(base_url=base_url, token=token)
                messages.success(request, f"Invitation link (works for {services.INVITATION_DAYS} days): {url}")
        elif action == "withdraw":
            services.invitation_revoke(actor=actor, invitation_id=post.get("invitation", ""))
            messages.success(request, "The invitation was withdrawn.")
        elif action == "rename":
            workspace = services.workspace_rename(
                actor=actor, name=post.get("name"), slug=post.get("slug") if actor.role == "owner" else None
            )
            messages.success(request, "Saved.")
            back = reverse("workspace-members", kwargs={"ref": workspace.slug})
        elif action == "delete":
            name = actor.workspace.name
            services.workspace_delete(actor=_user(request), workspace=actor.workspace, confirm=post.get("confirm"))
            messages.success(request, f"{name} was deleted.")
            return redirect("home")
        elif action == "leave":
            services.member_remove(actor=actor, user=_user(request))
            messages.success(request, f"You left {actor.workspace.name}.")
            return redirect("home")
        else:
            messages.error(request, "Unknown action.")
    except ApplicationError as error:
        messages.error(request, error.message)
    return redirect(back)
