"""Every write to workspaces, memberships and invitations (docs/workspaces.md). REST views and
pages call these; rooms.services calls the limits (workspaces.limits).

Invariants kept here:
- a workspace always has an owner (the last owner cannot step down or be removed);
- room memberships exist only for members of the room's workspace: leaving a workspace, or being
  removed from it, ends one's memberships of its rooms (rooms.services.memberships_end_in_workspace),
  and rooms.services only adds members of the room's workspace. rooms.access relies on it.
"""

import datetime as dt

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.text import slugify

import audit
from accounts.models import User
from core.errors import ApplicationError, Conflict, Forbidden, InvalidInput, NotFound
from core.jsontext import storable_text
from core.throttles import address_ident, mail_budgets_take
from workspaces.models import Workspace, WorkspaceInvitation, WorkspaceMembership

Role = WorkspaceMembership.Role
RANK: dict[str, int] = {Role.GUEST: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}
MANAGING_ROLES = frozenset({Role.OWNER, Role.ADMIN})
DEFAULT_SLUG = "default"
DEFAULT_NAME = "Parley"
INVITATION_SALT = "parley.workspaces.invitation"
INVITATION_DAYS = 7
# The default workspace holds everything of before workspaces (a whole organisation's rooms) and
# every new account: team-sized limits would refuse its first room. Operators lower them in admin.
DEFAULT_WORKSPACE_LIMITS = {
    "max_rooms": 1_000_000,
    "max_boards": 1_000_000,
    "max_storage_bytes": 2**40,
    "max_concurrent_simulations": 100,
}


class InvitationExpired(ApplicationError):
    code = "invitation_expired"
    status = 410
    message = "This invitation has expired or was withdrawn: ask for a new one."


def _invalid_invitation() -> NotFound:
    return NotFound("This invitation link is not valid.", code="invitation_invalid")


# -- the default workspace -------------------------------------------------------------------------


def default_workspace() -> Workspace:
    """The default workspace, made on first use if missing (a fresh database, or the test suite's
    flush after the data migration made it)."""
    workspace = Workspace.objects.filter(is_default=True).first()
    if workspace is None:
        try:
            with transaction.atomic():
                workspace = Workspace.objects.create(
                    name=DEFAULT_NAME, slug=DEFAULT_SLUG, is_default=True, **DEFAULT_WORKSPACE_LIMITS
                )
        except IntegrityError:  # made at the same moment by another process
            workspace = Workspace.objects.get(is_default=True)
    return workspace


def default_workspace_join(*, user: User) -> WorkspaceMembership:
    """A new account joins the default workspace as a member (workspaces.signals). Not audited:
    the account's creation is."""
    membership, _ = WorkspaceMembership.objects.get_or_create(
        workspace=default_workspace(), user=user, defaults={"role": Role.MEMBER}
    )
    return membership


def member_join_by_sso(*, user: User, workspace: Workspace, provider: str) -> WorkspaceMembership:
    """Someone the workspace's identity provider vouched for the first time (sso.services: created
    just in time, or linked) becomes a member; a member already keeps their role. Audited."""
    membership, created = WorkspaceMembership.objects.get_or_create(
        workspace=workspace, user=user, defaults={"role": Role.MEMBER}
    )
    if created:
        audit.record(
            action="workspace.member.join",
            actor=user,
            target=workspace,
            after={"role": membership.role, "via": "sso", "provider": provider},
            scope=audit_scope(workspace.pk),
        )
    return membership


# -- workspaces ------------------------------------------------------------------------------------


def _clean_name(name: object) -> str:
    name = str(name or "").strip()
    if not name:
        raise InvalidInput("A workspace needs a name.", fields={"name": ["This field may not be blank."]})
    if len(name) > Workspace.NAME_MAX_LENGTH:
        message = f"Workspace names are at most {Workspace.NAME_MAX_LENGTH} characters."
        raise InvalidInput(message, fields={"name": [message]})
    return storable_text(name, field="name")


def _clean_slug(slug: object, name: str) -> str:
    text = slugify(str(slug or name))[:50].strip("-")
    if not text or text.isdigit():  # digits name workspaces by id (workspaces.selectors)
        message = "A workspace's address needs at least one letter."
        raise InvalidInput(message, fields={"slug": [message]})
    return text


@transaction.atomic
def workspace_create(*, creator: User, name: object, slug: object = None) -> WorkspaceMembership:
    """A new workspace; its creator is its owner. Returns the creator's membership."""
    clean_name = _clean_name(name)
    clean_slug = _clean_slug(slug, clean_name)
    try:
        with transaction.atomic():
            workspace = Workspace.objects.create(name=clean_name, slug=clean_slug)
    except IntegrityError:
        message = "That address is taken: choose another."
        raise Conflict(message, code="slug_taken", fields={"slug": [message]}) from None
    membership = WorkspaceMembership.objects.create(workspace=workspace, user=creator, role=Role.OWNER)
    audit.record(
        action="workspace.create",
        actor=creator,
        target=workspace,
        after={"name": clean_name, "slug": clean_slug},
        scope=audit_scope(workspace.pk),
    )
    return membership


LIMIT_FIELDS = ("max_rooms", "max_boards", "max_storage_bytes", "max_concurrent_simulations")
SETTINGS_FIELDS = ("name", "slug", *LIMIT_FIELDS)


def _settings_apply(*, actor: User, workspace_id: int, changes: dict[str, object]) -> Workspace:
    """The one write of a workspace's settings (name, slug, limits), audited as workspace.settings
    with what changed. Who may change what is the callers' to check."""
    locked = Workspace.objects.select_for_update().get(pk=workspace_id)
    before = {field: getattr(locked, field) for field in SETTINGS_FIELDS}
    for field, value in changes.items():
        if field not in SETTINGS_FIELDS:
            raise InvalidInput(f"{field} cannot be changed here.", fields={field: ["Not a setting."]})
        if field == "name":
            value = _clean_name(value)
        elif field == "slug":
            value = _clean_slug(value, "")
        elif not isinstance(value, int) or value < 0:
            raise InvalidInput("Limits are whole numbers, 0 or more.", fields={field: ["A whole number, 0 or more."]})
        setattr(locked, field, value)
    changed = [field for field in SETTINGS_FIELDS if getattr(locked, field) != before[field]]
    if not changed:
        return locked
    try:
        with transaction.atomic():
            locked.save(update_fields=changed)
    except IntegrityError:  # the unique slug
        message = "That address is taken: choose another."
        raise Conflict(message, code="slug_taken", fields={"slug": [message]}) from None
    audit.record(
        action="workspace.settings",
        actor=actor,
        target=locked,
        before={field: before[field] for field in changed},
        after={field: getattr(locked, field) for field in changed},
        scope=audit_scope(locked.pk),
    )
    return locked


@transaction.atomic
def workspace_settings_update(*, actor: User, workspace: Workspace, changes: dict[str, object]) -> Workspace:
    """Rename a workspace, change its address or its limits (site staff, from Django admin).
    Lowering a limit below what is in use refuses new rooms/boards/uploads/runs from then on;
    nothing is deleted."""
    return _settings_apply(actor=actor, workspace_id=workspace.pk, changes=changes)


@transaction.atomic
def workspace_rename(*, actor: WorkspaceMembership, name: object = None, slug: object = None) -> Workspace:
    """Rename a workspace (owners and admins) or change its address, the slug (owners). The old
    slug names nothing from then on (`not_found`, and free for another workspace to take): ids
    never change, and the session, invitations and room payloads name workspaces by id
    (docs/workspaces.md "Managing a workspace")."""
    _require_manager(actor)
    changes: dict[str, object] = {}
    if name is not None:
        changes["name"] = name
    if slug is not None and str(slug).strip() != actor.workspace.slug:
        if actor.role != Role.OWNER:
            raise Forbidden("Only the workspace's owners can change its address.")
        changes["slug"] = slug
    return _settings_apply(actor=actor.user, workspace_id=actor.workspace_id, changes=changes)


@transaction.atomic
def workspace_delete(*, actor: User, workspace: Workspace, confirm: object, as_staff: bool = False) -> dict[str, int]:
    """Delete a workspace with everything in it (its owners, or site staff from Django admin):
    `confirm` must be its slug, typed again. Its rooms go one by one the way a room's owner
    deletes a room (rooms.services.rooms_delete_in_workspace: their messages, boards, files and
    runs with them; each announced and audited), then its members are told (`workspace.left`),
    its invitations and SSO providers go with it. The default workspace, which every new account
    joins, cannot be deleted. Returns what went: rooms, members."""
    from rooms.services import rooms_delete_in_workspace

    locked = Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
    if locked is None:
        raise NotFound()
    if not as_staff:
        role = WorkspaceMembership.objects.filter(workspace=locked, user=actor).values_list("role", flat=True).first()
        if role is None:
            raise NotFound()
        if role != Role.OWNER:
            raise Forbidden("Only the workspace's owners can delete it.")
    if locked.is_default:
        raise Conflict("The default workspace cannot be deleted: every new account joins it.", code="default_workspace")
    if str(confirm or "").strip() != locked.slug:
        message = f"Type the workspace's address ({locked.slug}) to confirm."
        raise InvalidInput(message, code="confirmation_required", fields={"confirm": [message]})
    members = list(WorkspaceMembership.objects.select_for_update().filter(workspace=locked).order_by("pk"))
    with audit.deferred():  # rooms lock their rows after recording: the chains' heads last
        rooms = rooms_delete_in_workspace(workspace_id=locked.pk, actor=actor)
        summary = {"name": locked.name, "slug": locked.slug, "rooms": rooms, "members": len(members)}
        workspace_id = locked.pk
        locked.delete()  # memberships, invitations and SSO providers cascade
        audit.record(
            action="workspace.delete",
            actor=actor,
            target=("workspace", workspace_id),
            before=summary,
            after={"as_staff": True} if as_staff else None,
        )
    for membership in members:
        _announce_left(user_id=membership.user_id, workspace_id=workspace_id, reason="deleted")
    return {"rooms": rooms, "members": len(members)}


def audit_scope(workspace_id: int) -> str:
    """A workspace's own audit chain (docs/audit.md "Chains")."""
    return audit.workspace_scope(workspace_id)


def _announce_left(*, user_id: int, workspace_id: int, reason: str) -> None:
    """Tell the person's sockets and streams (every device) that they are out of a workspace:
    `workspace.left`, after the `room.removed` frames of its rooms (published before it, in order)."""
    from core.events import dumps, send_event, user_group  # imported here: apart from the limits' imports

    frame = {"type": "workspace.left", "workspace": workspace_id, "reason": reason}
    send_event([user_group(user_id)], {"type": "user.relay", "text": dumps(frame)})


# -- members ---------------------------------------------------------------------------------------


def _clean_role(role: object, *, allow_owner: bool = True) -> str:
    allowed = [r for r in Role.values if allow_owner or r != Role.OWNER]
    if role not in allowed:
        raise InvalidInput(f"Role must be one of {', '.join(allowed)}.", fields={"role": ["Unknown role."]})
    return str(role)


def staff_actor(*, workspace: Workspace, user: User) -> WorkspaceMembership:
    """Site staff acting on a workspace from Django admin: an owner's rights, not a membership
    (never saved). Its entries say `as_staff`."""
    return WorkspaceMembership(workspace=workspace, user=user, role=Role.OWNER)


def _require_manager(actor: WorkspaceMembership) -> None:
    if actor.role not in MANAGING_ROLES:
        raise Forbidden("Only workspace owners and admins can do that.")


def _require_can_grant(actor: WorkspaceMembership, role: str) -> None:
    if actor.role != Role.OWNER and RANK[role] >= RANK[actor.role]:
        raise Forbidden("You cannot grant that role.")


def _target(actor: WorkspaceMembership, user: User) -> WorkspaceMembership:
    target = WorkspaceMembership.objects.select_for_update().filter(workspace_id=actor.workspace_id, user=user).first()
    if target is None:  # not a member: as unknown as a user of another workspace
        raise NotFound("No such user.", code="user_not_found")
    target.workspace, target.user = actor.workspace, user
    return target


def _require_another_owner(target: WorkspaceMembership) -> None:
    owners = WorkspaceMembership.objects.select_for_update().filter(workspace_id=target.workspace_id, role=Role.OWNER)
    if not owners.exclude(pk=target.pk).exists():
        raise Conflict("A workspace needs at least one owner; make someone else owner first.", code="last_owner")


def _audited(target: WorkspaceMembership, role: str | None) -> dict[str, object]:
    return {"workspace": target.workspace_id, "user": target.user_id, "role": role}


@transaction.atomic
def member_role_change(*, actor: WorkspaceMembership, user: User, role: object) -> WorkspaceMembership:
    _require_manager(actor)
    role = _clean_role(role)
    target = _target(actor, user)
    if actor.role != Role.OWNER and RANK[target.role] >= RANK[actor.role]:
        raise Forbidden("You cannot change members at or above your own role.")
    _require_can_grant(actor, role)
    if target.role == Role.OWNER and role != Role.OWNER:
        _require_another_owner(target)
    before = target.role
    # Becoming a guest keeps the rooms one is in (someone added them, or they joined while they
    # could): only discovering and joining public rooms stop (rooms.access.scoped_kind).
    if before != role:
        target.role = role
        target.save(update_fields=["role"])
        audit.record(
            action="workspace.member.role",
            actor=actor.user,
            target=user,
            before=_audited(target, before),
            after=_audited(target, role),
            scope=audit_scope(target.workspace_id),
        )
    return target


@transaction.atomic
def member_remove(*, actor: WorkspaceMembership, user: User) -> None:
    """Remove someone from the workspace (owners and admins; anyone may remove themselves: leave).
    Their memberships of the workspace's rooms end with it. It may be their last workspace: an
    account in none gets a page to create one or accept an invitation (`no_workspace`)."""
    from rooms.services import memberships_end_in_workspace

    target = _target(actor, user)
    if actor.user_id != user.pk:
        _require_manager(actor)
        if actor.role != Role.OWNER and RANK[target.role] >= RANK[actor.role]:
            raise Forbidden("You cannot remove members at or above your own role.")
    if target.role == Role.OWNER:
        _require_another_owner(target)
    with audit.deferred():  # room removals lock rows after recording: the chain's head last
        memberships_end_in_workspace(workspace_id=target.workspace_id, user=user, actor=actor.user)
        target.delete()
        leaving = actor.user_id == user.pk
        audit.record(
            action="workspace.member.leave" if leaving else "workspace.member.remove",
            actor=actor.user,
            target=user,
            before=_audited(target, target.role),
            scope=audit_scope(target.workspace_id),
        )
    _announce_left(user_id=user.pk, workspace_id=target.workspace_id, reason="left" if leaving else "removed")


# -- invitations -----------------------------------------------------------------------------------


def invitation_token(invitation: WorkspaceInvitation) -> str:
    """The signed token of an invitation (its id and workspace; the signature carries its time)."""
    return signing.dumps({"i": invitation.pk, "w": invitation.workspace_id}, salt=INVITATION_SALT, compress=True)


def invitation_url(*, base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/invitations/{token}/"


@transaction.atomic
def invitation_create(
    *, actor: WorkspaceMembership, email: object = "", role: object = Role.MEMBER, base_url: str
) -> tuple[WorkspaceInvitation, str]:
    """An invitation link (no email) or an email invitation (sent after commit through Django's
    email backend). Owners and admins invite, to roles below their own (owners: up to admin; a
    workspace's owners are made by a role change). Email invitations are limited per inviter
    (THROTTLE_INVITATION_USER) and per address (THROTTLE_INVITATION_ADDRESS): 429
    `email_rate_limited`, nothing made. Returns the invitation and its token."""
    _require_manager(actor)
    role = _clean_role(role, allow_owner=False)
    _require_can_grant(actor, role)
    address = str(email or "").strip()
    if address:
        from django.core.validators import validate_email

        try:
            validate_email(address)
        except Exception:
            raise InvalidInput(
                "Enter a valid email address.", fields={"email": ["Enter a valid email address."]}
            ) from None
        # Per inviter and per address invited (core.throttles): 429 `email_rate_limited`.
        mail_budgets_take(("invitation_user", str(actor.user_id)), ("invitation_address", address_ident(address)))
    invitation = WorkspaceInvitation.objects.create(
        workspace=actor.workspace,
        email=address,
        role=role,
        created_by=actor.user,
        expires_at=timezone.now() + dt.timedelta(days=INVITATION_DAYS),
    )
    token = invitation_token(invitation)
    if address:
        url = invitation_url(base_url=base_url, token=token)
        workspace_name, inviter = actor.workspace.name, actor.user.get_username()
        transaction.on_commit(lambda: _send_invitation(address, workspace_name, inviter, url))
    audit.record(
        action="workspace.invite",
        actor=actor.user,
        target=invitation,
        after={"workspace": actor.workspace_id, "role": role, "by_email": bool(address)},
        scope=audit_scope(actor.workspace_id),
    )
    return invitation, token


def _send_invitation(address: str, workspace_name: str, inviter: str, url: str) -> None:
    send_mail(
        subject=f"{inviter} invited you to {workspace_name} on Parley",
        message=(
            f"{inviter} invited you to join the workspace {workspace_name} on Parley.\n\n"
            f"Open this link, signed in with this email address, to join:\n{url}\n\n"
            f"The link works for {INVITATION_DAYS} days."
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[address],
    )


def invitations_list(*, actor: WorkspaceMembership) -> QuerySet[WorkspaceInvitation]:
    """The workspace's pending invitations, for its owners and admins (others: `forbidden`)."""
    from workspaces import selectors  # imported here: apart from the limits' imports

    _require_manager(actor)
    return selectors.invitations_pending(workspace_id=actor.workspace_id)


@transaction.atomic
def invitation_revoke(*, actor: WorkspaceMembership, invitation_id: object) -> WorkspaceInvitation:
    """Withdraw a pending invitation (owners and admins; only invitations to roles they could have
    granted). Its link or email then answers `invitation_expired`. Withdrawing one twice changes
    nothing; a used email invitation is `invitation_used` (409: remove the member instead). An
    invitation of another workspace, or none, is `not_found`."""
    _require_manager(actor)
    ident = str(invitation_id).strip()
    invitation = None
    if ident.isdigit() and len(ident) <= 18:  # fits a bigint
        invitation = (
            WorkspaceInvitation.objects.select_for_update()
            .filter(pk=int(ident), workspace_id=actor.workspace_id)
            .first()
        )
    if invitation is None:
        raise NotFound("No such invitation.", code="invitation_not_found")
    _require_can_grant(actor, invitation.role)
    if invitation.revoked_at is not None:
        return invitation
    if invitation.email and invitation.accepted_at is not None:
        raise Conflict("This invitation was already used: remove the member instead.", code="invitation_used")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit.record(
        action="workspace.invite.revoke",
        actor=actor.user,
        target=invitation,
        before={"workspace": actor.workspace_id, "role": invitation.role, "by_email": bool(invitation.email)},
        after={"as_staff": True} if actor.pk is None else None,
        scope=audit_scope(actor.workspace_id),
    )
    return invitation


def invitation_from_token(token: object) -> WorkspaceInvitation:
    """The invitation a token names, if its signature is good; `invitation_invalid` otherwise
    (changed, made with another key, or for an invitation that no longer exists), and
    `invitation_expired` for an old, withdrawn or already used one."""
    try:
        data = signing.loads(str(token), salt=INVITATION_SALT, max_age=dt.timedelta(days=INVITATION_DAYS))
    except signing.SignatureExpired:
        raise InvitationExpired() from None
    except signing.BadSignature:
        raise _invalid_invitation() from None
    ident, workspace_id = (data.get("i"), data.get("w")) if isinstance(data, dict) else (None, None)
    if not isinstance(ident, int) or not isinstance(workspace_id, int):
        raise _invalid_invitation()
    invitation = (
        WorkspaceInvitation.objects.select_related("workspace").filter(pk=ident, workspace_id=workspace_id).first()
    )
    if invitation is None:
        raise _invalid_invitation()
    if invitation.revoked_at is not None or invitation.expires_at <= timezone.now():
        raise InvitationExpired()
    if invitation.email and invitation.accepted_at is not None:
        raise InvitationExpired("This invitation was already used.")
    return invitation


@transaction.atomic
def invitation_accept(*, user: User, token: object) -> WorkspaceMembership:
    """Join the invitation's workspace with its role. An email invitation is for the account with
    that address, once; a link invites whoever has it until it expires. A member already keeps
    their role."""
    invitation = invitation_from_token(token)
    invitation = WorkspaceInvitation.objects.select_for_update().select_related("workspace").get(pk=invitation.pk)
    if invitation.email:
        if invitation.accepted_at is not None:
            raise InvitationExpired("This invitation was already used.")
        if invitation.email.casefold() != (user.email or "").casefold():
            raise Forbidden(
                "This invitation was sent to another email address: sign in with that account.", code="wrong_account"
            )
    membership, created = WorkspaceMembership.objects.get_or_create(
        workspace=invitation.workspace, user=user, defaults={"role": invitation.role}
    )
    if invitation.email:
        invitation.accepted_by, invitation.accepted_at = user, timezone.now()
        invitation.save(update_fields=["accepted_by", "accepted_at"])
    if created:
        audit.record(
            action="workspace.member.join",
            actor=user,
            target=invitation.workspace,
            after={"role": membership.role, "invitation": invitation.pk},
            scope=audit_scope(invitation.workspace_id),
        )
    membership.workspace = invitation.workspace
    return membership


# -- account erasure (accounts.erasure; docs/accounts.md "Erasing an account") ---------------------


@transaction.atomic
def member_erased(*, user: User, email: str) -> int:
    """An erased account leaves every workspace (after it has left every room: accounts.erasure).
    A workspace it owned alone goes to the longest-standing admin, else member, else guest, so a
    workspace keeps an owner while anyone is in it; one nobody else is in is left without members.
    Invitations mailed to its address go too (the address is erased). Returns how many it left."""
    memberships = list(WorkspaceMembership.objects.select_for_update().filter(user=user).order_by("workspace_id"))
    for membership in memberships:
        others = list(
            WorkspaceMembership.objects.select_for_update()
            .filter(workspace_id=membership.workspace_id)
            .exclude(pk=membership.pk)
        )
        if membership.role == Role.OWNER and others and not any(other.role == Role.OWNER for other in others):
            heir = sorted(others, key=lambda other: (-RANK[other.role], other.joined_at, other.pk))[0]
            before = heir.role
            heir.role = Role.OWNER
            heir.save(update_fields=["role"])
            audit.record(
                action="workspace.member.role",
                actor=user,
                target=("user", heir.user_id),
                before=_audited(heir, before),
                after=_audited(heir, Role.OWNER) | {"erased_owner": True},
                scope=audit_scope(heir.workspace_id),
            )
        membership.delete()
        audit.record(
            action="workspace.member.leave",
            actor=user,
            target=("user", user.pk),
            before=_audited(membership, membership.role),
            after={"erased": True},
            scope=audit_scope(membership.workspace_id),
        )
    if email:
        WorkspaceInvitation.objects.filter(email__iexact=email).delete()
    return len(memberships)
