"""The JSON shapes of workspaces, their members and invitations (REST; rooms.payloads' style)."""

from typing import Annotated, TypedDict

from rooms.payloads import DateTimeStr, UserPayload, user_payload
from workspaces.models import Workspace, WorkspaceInvitation, WorkspaceMembership


class WorkspacePayload(TypedDict):
    id: int
    name: str
    slug: Annotated[str, "Names the workspace in `?workspace=` and the X-Parley-Workspace header, like its id"]
    role: Annotated[str, WorkspaceMembership.Role, "My role in it"]
    is_default: Annotated[bool, "The workspace every new account joins"]
    limits: Annotated[dict[str, int], "rooms, boards, storage_bytes, concurrent_simulations"]


class WorkspaceMemberPayload(TypedDict):
    user: UserPayload
    role: Annotated[str, WorkspaceMembership.Role]
    joined_at: DateTimeStr


class InvitationPayload(TypedDict):
    id: int
    email: Annotated[str, "Empty for a link anyone with it may use"]
    role: Annotated[str, WorkspaceMembership.Role]
    expires_at: DateTimeStr
    token: Annotated[str, "Signed; POST it to `invitations/accept/` (or open `url` signed in)"]
    url: str


class PendingInvitationPayload(TypedDict):
    id: int
    email: Annotated[str, "Empty for a link anyone with it may use"]
    role: Annotated[str, WorkspaceMembership.Role]
    created_by: Annotated[str | None, "The inviter's username"]
    created_at: DateTimeStr
    expires_at: DateTimeStr
    url: Annotated[str, "A link's address, to share again; empty for an email invitation (only its address may use it)"]


def limits_payload(workspace: Workspace) -> dict[str, int]:
    return {
        "rooms": workspace.max_rooms,
        "boards": workspace.max_boards,
        "storage_bytes": workspace.max_storage_bytes,
        "concurrent_simulations": workspace.max_concurrent_simulations,
    }


def workspace_payload(membership: WorkspaceMembership) -> WorkspacePayload:
    workspace = membership.workspace
    return {
        "id": workspace.pk,
        "name": workspace.name,
        "slug": workspace.slug,
        "role": membership.role,
        "is_default": workspace.is_default,
        "limits": limits_payload(workspace),
    }


def workspace_member_payload(membership: WorkspaceMembership) -> WorkspaceMemberPayload:
    return {
        "user": user_payload(membership.user),
        "role": membership.role,
        "joined_at": membership.joined_at.isoformat(),
    }


def invitation_payload(invitation: WorkspaceInvitation, *, token: str, url: str) -> InvitationPayload:
    return {
        "id": invitation.pk,
        "email": invitation.email,
        "role": invitation.role,
        "expires_at": invitation.expires_at.isoformat(),
        "token": token,
        "url": url,
    }


def pending_invitation_payload(invitation: WorkspaceInvitation, *, url: str) -> PendingInvitationPayload:
    return {
        "id": invitation.pk,
        "email": invitation.email,
        "role": invitation.role,
        "created_by": invitation.created_by.get_username() if invitation.created_by else None,
        "created_at": invitation.created_at.isoformat(),
        "expires_at": invitation.expires_at.isoformat(),
        "url": "" if invitation.email else url,
    }
