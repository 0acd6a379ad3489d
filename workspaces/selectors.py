"""Reads of workspaces: mine, the current one, members, a member's role.

A workspace one is not a member of is `not_found`, like a room one may not see."""

import re
from typing import Any

from django.db.models import Q, QuerySet, Subquery
from django.utils import timezone

from accounts.models import User
from core.errors import ApplicationError, NotFound
from workspaces.models import Workspace, WorkspaceInvitation, WorkspaceMembership

# REST clients name their current workspace with this header or the `workspace` query parameter
# (its id or slug); pages keep it in the session under SESSION_KEY.
HEADER = "HTTP_X_PARLEY_WORKSPACE"
QUERY_PARAMETER = "workspace"
SESSION_KEY = "workspace_id"


class NoWorkspace(ApplicationError):
    """The account belongs to no workspace (made in bulk or out of band, or it left or was removed
    from every one, or its last workspace was deleted): nothing that works "in my current
    workspace" can. Pages show a page to create one or accept an invitation instead (rooms.views.home);
    the API answers 409 with this code. Not `not_found`: nothing is hidden, the account is empty."""

    code = "no_workspace"
    status = 409
    message = "You are not a member of any workspace: create one, or accept an invitation."


def workspace_list_for_user(*, user: User) -> QuerySet[WorkspaceMembership]:
    """The user's workspace memberships, first joined first (the first is the default current one)."""
    return WorkspaceMembership.objects.filter(user=user).select_related("workspace").order_by("joined_at", "pk")


_ID = re.compile(r"[0-9]{1,18}")  # fits a bigint
_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,50}")


def _by_ref(ref: object) -> dict[str, object]:
    """A workspace's id or slug as a lookup; anything else (too long, not a slug) names nothing."""
    text = str(ref).strip()
    if _ID.fullmatch(text):
        return {"workspace_id": int(text)}
    if _SLUG.fullmatch(text):
        return {"workspace__slug": text}
    raise NotFound()


def membership_get(*, user: User, workspace: object) -> WorkspaceMembership:
    """The user's membership of the workspace named by id or slug (or given); `not_found` for
    workspaces they are not in, existing or not."""
    if isinstance(workspace, Workspace):
        lookup: dict[str, object] = {"workspace_id": workspace.pk}
    else:
        lookup = _by_ref(workspace)
    membership = WorkspaceMembership.objects.select_related("workspace", "user").filter(user=user, **lookup).first()
    if membership is None or not user.is_authenticated:
        raise NotFound()
    return membership


def membership_current(*, user: User, ref: object = None) -> WorkspaceMembership:
    """The user's current workspace: the one named (`not_found` if they are not a member), else
    their first. An account in none (docs/workspaces.md "An account with no workspace") is
    `no_workspace` (409)."""
    if ref not in (None, ""):
        return membership_get(user=user, workspace=ref)
    membership = workspace_list_for_user(user=user).select_related("user").first()
    if membership is None:
        raise NoWorkspace()
    return membership


def membership_for_request(request) -> WorkspaceMembership:
    """The current workspace of a request (REST or page): the one named by `?workspace=` or the
    X-Parley-Workspace header (`not_found` if it is not mine), else the session's (the web UI's
    switcher; ignored once I have left it), else my first; `no_workspace` when I am in none."""
    params = getattr(request, "query_params", None) or request.GET
    named = params.get(QUERY_PARAMETER) or request.META.get(HEADER)
    if named:
        return membership_current(user=request.user, ref=named)
    session = getattr(request, "session", None)
    remembered = session.get(SESSION_KEY) if session is not None else None
    if isinstance(remembered, int):
        membership = (
            WorkspaceMembership.objects.select_related("workspace", "user")
            .filter(user=request.user, workspace_id=remembered)
            .first()
        )
        if membership is not None:
            return membership
    return membership_current(user=request.user)


def workspace_members(*, workspace: Workspace) -> QuerySet[WorkspaceMembership]:
    return WorkspaceMembership.objects.filter(workspace=workspace).select_related("user").order_by("user__username")


def role_in(*, user_id: int, workspace_id: int) -> str | None:
    """The user's role in the workspace, None if not a member."""
    return (
        WorkspaceMembership.objects.filter(user_id=user_id, workspace_id=workspace_id)
        .values_list("role", flat=True)
        .first()
    )


def workspace_role_of(user_id: int, workspace_id: Any) -> Subquery:
    """The user's role in a workspace as a subquery (`workspace_id` is usually an OuterRef): for
    selectors that read an object and its reader's rights in one query (boards.selectors)."""
    return Subquery(WorkspaceMembership.objects.filter(workspace_id=workspace_id, user_id=user_id).values("role")[:1])


def invitations_pending(*, workspace_id: int) -> QuerySet[WorkspaceInvitation]:
    """Invitations of a workspace that can still be used: not withdrawn, not expired, and (for an
    email invitation) not used yet. Newest first."""
    return (
        WorkspaceInvitation.objects.filter(workspace_id=workspace_id, revoked_at__isnull=True)
        .filter(expires_at__gt=timezone.now())
        .filter(Q(email="") | Q(accepted_at__isnull=True))
        .select_related("created_by")
        .order_by("-created_at", "-pk")
    )


def invitations_for_email(*, email: str) -> QuerySet[WorkspaceInvitation]:
    """Pending email invitations sent to this address (the page of an account with no workspace
    offers them). Nothing for an account without an address."""
    if not email:
        return WorkspaceInvitation.objects.none()
    return (
        WorkspaceInvitation.objects.filter(email__iexact=email, revoked_at__isnull=True, accepted_at__isnull=True)
        .filter(expires_at__gt=timezone.now())
        .select_related("workspace")
        .order_by("-created_at", "-pk")
    )
