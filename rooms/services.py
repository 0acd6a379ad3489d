"""Every write to rooms and memberships. REST views, pages, the admin and the consumer call these.

Who may do what is rooms.access. Invariants kept here, whoever asks:
- a room with members always has an owner: an owner can step down or leave only once another
  owner exists; the last member to leave deletes the room (and its history), so no room is ever
  left ownerless for anyone to join and take over;
- every change is announced after commit (core.events): the user's own sockets follow their
  memberships, and the room hears about its members.
"""

from django.db import IntegrityError, transaction

import audit
from accounts.models import User
from attachments import binding as attachment_binding
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.events import dumps, room_group, send_event, user_group
from core.jsontext import storable_text
from rooms import access
from rooms.models import OPEN_ROOM_KINDS, Membership, Room
from rooms.payloads import GoneMemberPayload, MemberPayload, member_payload, room_payload, user_payload
from workspaces import limits
from workspaces import selectors as workspace_selectors
from workspaces.models import Workspace, WorkspaceMembership

Role = Membership.Role


def _clean_name(name: object) -> str:
    name = str(name or "").strip()
    if not name:
        raise InvalidInput("A room needs a name.", fields={"name": ["This field may not be blank."]})
    if len(name) > Room.NAME_MAX_LENGTH:
        message = f"Room names are at most {Room.NAME_MAX_LENGTH} characters."
        raise InvalidInput(message, fields={"name": [message]})
    return storable_text(name, field="name")


def _clean_topic(topic: object) -> str:
    topic = str(topic or "").strip()
    if len(topic) > Room.TOPIC_MAX_LENGTH:
        message = f"Topics are at most {Room.TOPIC_MAX_LENGTH} characters."
        raise InvalidInput(message, fields={"topic": [message]})
    return storable_text(topic, field="topic")


def _clean_kind(kind: object) -> str:
    if kind not in dict(OPEN_ROOM_KINDS):
        raise InvalidInput("Kind must be public or private.", fields={"kind": ["Unknown kind."]})
    return str(kind)


def _clean_role(role: object) -> str:
    if role not in Role.values:
        raise InvalidInput(f"Role must be one of {', '.join(Role.values)}.", fields={"role": ["Unknown role."]})
    return str(role)


def staff_actor(*, room: Room, user: User) -> Membership:
    """Site staff acting on a room from Django admin: an owner's rights, not a membership (it is
    never saved). The room's invariants hold for staff like for anyone."""
    return Membership(room=room, user=user, role=Role.OWNER)


def _announce_membership(*, room: Room, user: User, membership: Membership | None) -> None:
    """Tell the user's sockets to (un)subscribe, and the room to update its member list."""
    role = membership.role if membership else None
    member: MemberPayload | GoneMemberPayload
    if membership is not None:
        frame = {"type": "room.added", "room": room_payload(room, role=role)}
        member = member_payload(membership)
    else:
        frame = {"type": "room.removed", "room": str(room.pk)}
        member = {"user": user_payload(user), "role": None, "joined_at": None}
    send_event(
        [user_group(user.pk)],
        {"type": "user.membership", "room": str(room.pk), "role": role, "text": dumps(frame)},
    )
    send_event(
        [room_group(room.pk)],
        {
            "type": "room.relay",
            "room": str(room.pk),
            "text": dumps({"type": "member.update", "room": str(room.pk), "member": member}),
            # A second path for removals: the channel layer may drop the user-group event.
            "gone_user": user.pk if membership is None else None,
        },
    )


def _audited_room(room: Room) -> dict[str, object]:
    return {"name": room.name, "kind": room.kind}


def _audited_role(actor: Membership, user: User, role: str | None) -> dict[str, object]:
    # Staff acting from Django admin hold no membership (staff_actor): said so.
    summary: dict[str, object] = {"room": str(actor.room.pk), "user": user.pk, "role": role}
    return summary | ({"as_staff": True} if actor.pk is None else {})


def _require_manager(membership: Membership) -> None:
    if membership.room.kind == Room.Kind.DIRECT:
        raise Forbidden("Direct conversations have fixed members.", code="direct_room")
    if not access.may_manage(membership):
        raise Forbidden("Only room owners and admins can do that.")


def _require_can_grant(actor: Membership, role: str) -> None:
    # Owners grant anything; admins grant roles below their own.
    if actor.role != Role.OWNER and access.RANK[role] >= access.RANK[actor.role]:
        raise Forbidden("You cannot grant that role.")


def _require_outranks(actor: Membership, target: Membership) -> None:
    if actor.role != Role.OWNER and access.RANK[target.role] >= access.RANK[actor.role]:
        raise Forbidden("You cannot change members at or above your own role.")


def _require_another_owner(room: Room, leaving: Membership) -> None:
    owners = Membership.objects.select_for_update().filter(room=room, role=Role.OWNER).exclude(pk=leaving.pk)
    if not owners.exists():
        raise Conflict("A room needs at least one owner; make someone else owner first.", code="last_owner")


def _target(room: Room, user: User) -> Membership:
    target = Membership.objects.select_for_update().filter(room=room, user=user).first()
    if target is None:
        raise NotFound("That person is not a member.", code="not_member_target")
    target.room, target.user = room, user
    return target


def _require_workspace_member(*, workspace_id: int, user: User) -> None:
    """Room memberships are for members of the room's workspace (rooms.access.scoped_kind relies on
    it); anyone else is as unknown as a user who does not exist."""
    if workspace_selectors.role_in(user_id=user.pk, workspace_id=workspace_id) is None:
        raise NotFound("No such user.", code="user_not_found")


@transaction.atomic
def room_create(
    *,
    creator: User,
    name: str,
    topic: str = "",
    kind: str = Room.Kind.PUBLIC,
    workspace: Workspace | WorkspaceMembership | None = None,
) -> Room:
    """A room in `workspace` (the creator's current one; None: their first), within its room limit.
    Guests of a workspace do not create rooms in it."""
    if isinstance(workspace, WorkspaceMembership):
        place = workspace
    else:
        place = workspace_selectors.membership_current(user=creator, ref=workspace.pk if workspace else None)
    if place.role == WorkspaceMembership.Role.GUEST:
        raise Forbidden("Guests cannot create rooms in this workspace.", code="guest")
    name, topic, kind = _clean_name(name), _clean_topic(topic), _clean_kind(kind)
    limits.require_room_slot(workspace_id=place.workspace_id)
    room = Room.objects.create(name=name, topic=topic, kind=kind, created_by=creator, workspace_id=place.workspace_id)
    membership = Membership.objects.create(room=room, user=creator, role=Role.OWNER)
    _announce_membership(room=room, user=creator, membership=membership)
    audit.record(action="room.create", actor=creator, target=room, after=_audited_room(room), scope=_scope(room))
    return room


def direct_room_get_or_create(
    *, user: User, other: User, workspace: Workspace | WorkspaceMembership | None = None
) -> tuple[Room, bool]:
    """The one direct room of a pair of users in a workspace both belong to (`workspace`: the
    user's current one; None: their first), and whether this call created it (on first use; found
    again afterwards). Someone outside it is `user_not_found`."""
    if isinstance(workspace, WorkspaceMembership):
        workspace_id = workspace.workspace_id
    else:
        workspace_id = workspace_selectors.membership_current(
            user=user, ref=workspace.pk if workspace else None
        ).workspace_id
    if user.pk == other.pk:
        raise InvalidInput("A direct conversation needs another person.", fields={"user": ["That is you."]})
    _require_workspace_member(workspace_id=workspace_id, user=other)
    low, high = sorted([user.pk, other.pk])
    key = f"{workspace_id}:{low}:{high}"
    existing = Room.objects.filter(direct_key=key).first()
    if existing:
        return existing, False
    try:
        with transaction.atomic():
            room = Room.objects.create(
                name=f"{user.username}, {other.username}",
                kind=Room.Kind.DIRECT,
                direct_key=key,
                created_by=user,
                workspace_id=workspace_id,
            )
            for person in (user, other):
                membership = Membership.objects.create(room=room, user=person, role=Role.MEMBER)
                _announce_membership(room=room, user=person, membership=membership)
            audit.record(action="room.create", actor=user, target=room, after=_audited_room(room), scope=_scope(room))
    except IntegrityError:  # the other person opened it at the same moment: use theirs
        return Room.objects.get(direct_key=key), False
    return room, True


@transaction.atomic
def room_update(
    *, actor: Membership, name: str | None = None, topic: str | None = None, kind: str | None = None
) -> Room:
    _require_manager(actor)
    room = Room.objects.select_for_update().get(pk=actor.room.pk)
    before = {"name": room.name, "topic": room.topic, "kind": room.kind}
    if name is not None:
        room.name = _clean_name(name)
    if topic is not None:
        room.topic = _clean_topic(topic)
    if kind is not None:
        room.kind = _clean_kind(kind)
    room.save(update_fields=["name", "topic", "kind"])
    after = {"name": room.name, "topic": room.topic, "kind": room.kind}
    if changed := [field for field in after if after[field] != before[field]]:
        audit.record(
            action="room.update",
            actor=actor.user,
            target=room,
            before={field: before[field] for field in changed},
            after={field: after[field] for field in changed},
            scope=_scope(room),
        )
    frame = {"type": "room.update", "room": room_payload(room)}
    send_event([room_group(room.pk)], {"type": "room.relay", "room": str(room.pk), "text": dumps(frame)})
    return room


@transaction.atomic
def room_delete(*, actor: Membership) -> None:
    room = actor.room
    if room.kind == Room.Kind.DIRECT or actor.role != Role.OWNER:
        raise Forbidden("Only the room owner can delete it.")
    _delete(room, actor=actor.user)


def _delete(room: Room, *, actor: User, last_member_left: bool = False) -> None:
    for membership in Membership.objects.filter(room=room).select_related("user"):
        _announce_membership(room=room, user=membership.user, membership=None)
    room_id = room.pk
    attachment_binding.release_room(room_id=room_id)  # its files leave the store after commit
    room.delete()
    after = {"last_member_left": True} if last_member_left else None
    audit.record(
        action="room.delete",
        actor=actor,
        target=("room", room_id),
        before=_audited_room(room),
        after=after,
        scope=_scope(room),
    )


def _scope(room: Room) -> str:
    """The audit chain of the room's workspace: its entries are the workspace's (docs/audit.md)."""
    return audit.workspace_scope(room.workspace_id)


@transaction.atomic
def room_join(*, room: Room, user: User) -> Membership:
    """Join a public room. Joining twice is harmless and returns the existing membership."""
    if room.kind != Room.Kind.PUBLIC:
        raise Forbidden("Only public rooms can be joined; ask a member to invite you.")
    # Not a member yet: a guest of the room's workspace may not join it, an outsider not see it.
    if not Membership.objects.filter(room=room, user=user).exists():
        workspace_role = workspace_selectors.role_in(user_id=user.pk, workspace_id=room.workspace_id)
        kind = access.scoped_kind(kind=room.kind, role=None, workspace_role=workspace_role)
        if kind is None:
            raise NotFound()
        if kind != Room.Kind.PUBLIC:
            raise Forbidden("Guests join only the rooms they are added to.", code="guest")
    membership, created = Membership.objects.get_or_create(room=room, user=user, defaults={"role": Role.MEMBER})
    if created:
        _announce_membership(room=room, user=user, membership=membership)
        audit.record(
            action="membership.join", actor=user, target=room, after={"role": membership.role}, scope=_scope(room)
        )
    return membership


@transaction.atomic
def room_leave(*, membership: Membership, new_owner: User | None = None) -> None:
    """Leave a room. An owner leaves only once another owner exists, or hands the room to
    `new_owner` (ownership_transfer) in the same transaction; the last member to leave deletes the
    room."""
    room = Room.objects.select_for_update().get(pk=membership.room.pk)  # one leaver at a time
    if room.kind == Room.Kind.DIRECT:
        raise Forbidden("Direct conversations cannot be left.", code="direct_room")
    # The hand-over records its entries before this locks the remaining owners: they are written
    # at the end, the chain's head last (docs/audit.md "How it is written").
    with audit.deferred():
        if new_owner is not None:
            ownership_transfer(actor=membership, user=new_owner)
        if not Membership.objects.filter(room=room).exclude(pk=membership.pk).exists():
            _delete(room, actor=membership.user, last_member_left=True)
            return
        if membership.role == Role.OWNER:
            _require_another_owner(room, membership)
        membership.delete()
        _announce_membership(room=room, user=membership.user, membership=None)
        audit.record(
            action="membership.leave",
            actor=membership.user,
            target=room,
            before={"role": membership.role},
            scope=_scope(room),
        )


@transaction.atomic
def membership_add(*, actor: Membership, user: User, role: str = Role.MEMBER) -> Membership:
    _require_manager(actor)
    role = _clean_role(role)
    _require_can_grant(actor, role)
    _require_workspace_member(workspace_id=actor.room.workspace_id, user=user)
    try:
        with transaction.atomic():
            membership = Membership.objects.create(room=actor.room, user=user, role=role)
    except IntegrityError:
        raise Conflict("That person is already a member.", code="already_member") from None
    _announce_membership(room=actor.room, user=user, membership=membership)
    audit.record(
        action="membership.add",
        actor=actor.user,
        target=user,
        after=_audited_role(actor, user, role),
        scope=_scope(actor.room),
    )
    return membership


@transaction.atomic
def membership_update(*, actor: Membership, user: User, role: str) -> Membership:
    _require_manager(actor)
    role = _clean_role(role)
    target = _target(actor.room, user)
    _require_outranks(actor, target)
    _require_can_grant(actor, role)
    if target.role == Role.OWNER and role != Role.OWNER:
        _require_another_owner(actor.room, target)
    before = _audited_role(actor, user, target.role)
    target.role = role
    target.save(update_fields=["role"])
    _announce_membership(room=actor.room, user=user, membership=target)
    if before["role"] != role:
        after = _audited_role(actor, user, role)
        audit.record(
            action="membership.role",
            actor=actor.user,
            target=user,
            before=before,
            after=after,
            scope=_scope(actor.room),
        )
    return target


@transaction.atomic
def membership_remove(*, actor: Membership, user: User) -> None:
    if actor.pk is not None and actor.user_id == user.pk:
        room_leave(membership=actor)
        return
    _require_manager(actor)
    target = _target(actor.room, user)
    _require_outranks(actor, target)
    if target.role == Role.OWNER:
        _require_another_owner(actor.room, target)
    target.delete()
    _announce_membership(room=actor.room, user=user, membership=None)
    audit.record(
        action="membership.remove",
        actor=actor.user,
        target=user,
        before=_audited_role(actor, user, target.role),
        scope=_scope(actor.room),
    )


@transaction.atomic
def ownership_transfer(*, actor: Membership, user: User) -> Membership:
    """The owner hands the room to another member: they become an owner and the actor steps down
    to admin, in one transaction, so the room has an owner at every moment (and an owner about to
    leave can do so: room_leave's `new_owner`). Both steps are membership_update, the one path for
    role changes. Returns the new owner's membership."""
    if actor.room.kind == Room.Kind.DIRECT:
        raise Forbidden("Direct conversations have fixed members.", code="direct_room")
    if actor.role != Role.OWNER:
        raise Forbidden("Only the room's owner can hand over ownership.")
    if actor.user_id == user.pk:
        raise InvalidInput("You already own this room.", fields={"user": ["That is you."]})
    # The room's row first, like room_leave: a transfer and a leave of the same room queue up.
    Room.objects.select_for_update().filter(pk=actor.room.pk).first()
    # Two role changes, each recorded: the first one's entry would lock the chain's head before
    # the second locks the old owner's membership, and a concurrent change of that member (holding
    # it, waiting for the head) would deadlock with us. Deferred, both entries are written last.
    with audit.deferred():
        new_owner = membership_update(actor=actor, user=user, role=Role.OWNER)
        if actor.pk is not None:  # staff acting from admin hold no membership to step down from
            membership_update(actor=actor, user=actor.user, role=Role.ADMIN)
            actor.role = Role.ADMIN
    return new_owner


@transaction.atomic
def member_erased(*, membership: Membership, shown_as: str) -> str:
    """Take an erased account (accounts.erasure) out of a room, the way it would leave:
    - a room it owns alone goes to the next in line: the longest-standing admin, else member,
      else viewer (ownership_transfer, then room_leave); a room with nobody else is deleted
      (room_leave's last-member rule);
    - a direct room cannot be left, so only the erased person's membership goes; the room's name,
      which held their username, names them `shown_as` instead, and the other person keeps the
      room and its history (once both are erased, the room is deleted).
    Returns what happened: "left", "handed_over", "deleted" or "direct"."""
    room = Room.objects.select_for_update().get(pk=membership.room.pk)
    membership.room = room
    others = list(Membership.objects.filter(room=room).exclude(pk=membership.pk).select_related("user"))
    if room.kind == Room.Kind.DIRECT and not others:  # the other person was erased before: nobody is left
        with audit.deferred():
            _delete(room, actor=membership.user, last_member_left=True)
        return "deleted"
    if room.kind == Room.Kind.DIRECT:
        room.name = ", ".join([*(other.user.username for other in others), shown_as])[: Room.NAME_MAX_LENGTH]
        room.save(update_fields=["name"])
        membership.delete()
        _announce_membership(room=room, user=membership.user, membership=None)
        frame = {"type": "room.update", "room": room_payload(room)}
        send_event([room_group(room.pk)], {"type": "room.relay", "room": str(room.pk), "text": dumps(frame)})
        audit.record(
            action="membership.leave",
            actor=membership.user,
            target=room,
            before={"role": membership.role},
            after={"erased": True},
            scope=_scope(room),
        )
        return "direct"
    new_owner = None
    if membership.role == Role.OWNER and not any(other.role == Role.OWNER for other in others):
        in_line = sorted(others, key=lambda other: (-access.RANK[other.role], other.joined_at, other.pk))
        new_owner = in_line[0].user if in_line else None
    room_leave(membership=membership, new_owner=new_owner)
    return "deleted" if not others else "handed_over" if new_owner is not None else "left"


def memberships_end_in_workspace(*, workspace_id: int, user: User, actor: User) -> None:
    """`user` leaves (or is removed from) a workspace: their memberships of its rooms end, each
    announced and recorded. A room they were the last member of is deleted, as when the last
    member leaves; one they were the only owner of passes to its longest-standing remaining
    member, so no room is left without an owner. Direct rooms lose them too (the other person
    keeps the history). Called by workspaces.services.member_remove, in its transaction."""
    memberships = (
        Membership.objects.select_for_update(of=("self",))
        .filter(user=user, room__workspace_id=workspace_id)
        .select_related("room")
        .order_by("room_id")
    )
    for membership in memberships:
        room = membership.room
        others = Membership.objects.select_for_update().filter(room=room).exclude(pk=membership.pk)
        if not others.exists():
            _delete(room, actor=actor, last_member_left=True)
            continue
        if membership.role == Role.OWNER and not others.filter(role=Role.OWNER).exists():
            heir = others.order_by("joined_at", "pk").select_related("user").first()
            assert heir is not None
            before = heir.role
            heir.role = Role.OWNER
            heir.save(update_fields=["role"])
            heir.room = room
            _announce_membership(room=room, user=heir.user, membership=heir)
            audit.record(
                action="membership.role",
                actor=actor,
                target=heir.user,
                before={"room": str(room.pk), "user": heir.user_id, "role": before},
                after={"room": str(room.pk), "user": heir.user_id, "role": Role.OWNER, "left_workspace": user.pk},
                scope=_scope(room),
            )
        membership.delete()
        _announce_membership(room=room, user=user, membership=None)
        audit.record(
            action="membership.remove",
            actor=actor,
            target=user,
            before={"room": str(room.pk), "user": user.pk, "role": membership.role},
            after={"left_workspace": workspace_id},
            scope=_scope(room),
        )


def rooms_delete_in_workspace(*, workspace_id: int, actor: User) -> int:
    """Delete every room of a workspace, each the way its owner would (announced to its members,
    its files released, audited): workspaces.services.workspace_delete, in its transaction.
    Returns how many."""
    rooms = list(Room.objects.select_for_update().filter(workspace_id=workspace_id).order_by("pk"))
    for room in rooms:
        _delete(room, actor=actor)
    return len(rooms)
