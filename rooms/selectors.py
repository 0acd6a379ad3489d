import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, OuterRef, QuerySet, Subquery

from accounts.models import User, username_is
from core import asyncdb
from core.errors import NotFound
from core.jsontext import storable_text
from rooms import access
from rooms.models import Membership, Room
from rooms.payloads import room_payload
from workspaces import selectors as workspace_selectors
from workspaces.models import WorkspaceMembership


def parse_room_id(room_id: object) -> uuid.UUID:
    try:
        return room_id if isinstance(room_id, uuid.UUID) else uuid.UUID(str(room_id))
    except (ValueError, TypeError, AttributeError):
        raise NotFound() from None


def room_get_visible(*, room_id: object, user: User) -> tuple[Room, Membership | None]:
    """The room and the user's membership, if the user may see it (a member, or the room is public).

    Missing and invisible rooms raise the same NotFound, so nobody learns a private room exists.
    """
    pk = parse_room_id(room_id)
    # A member's room comes with their membership, in one query (a socket's every sync, send and
    # read asks this); the room alone only for someone who is not a member. The user as the
    # database has it now (is_active), not as a long-lived socket saw it at connect.
    membership = (
        Membership.objects.select_related("user", "room", "room__created_by").filter(room_id=pk, user=user).first()
    )
    room = (
        membership.room if membership is not None else Room.objects.select_related("created_by").filter(pk=pk).first()
    )
    role = membership.role if membership is not None else None
    # The workspace rule (rooms.access.scoped_kind): read only for non-members, whose way in is a
    # public room of a workspace of theirs.
    workspace_role = (
        workspace_selectors.role_in(user_id=user.pk, workspace_id=room.workspace_id)
        if room is not None and membership is None and room.kind == Room.Kind.PUBLIC
        else None
    )
    kind = access.scoped_kind(kind=room.kind if room is not None else None, role=role, workspace_role=workspace_role)
    refusal = access.see_refusal(kind=kind, role=role)
    if refusal is not None:
        raise refusal
    assert room is not None  # see_refusal refuses a missing room
    return room, membership


def membership_get(*, room_id: object, user: User) -> Membership:
    """The user's membership of a room they may see; non-members of public rooms (of a workspace of
    theirs) get `not_member`, deactivated accounts `account_inactive`. Its `user` is read with it
    (is_active as it is now)."""
    room, membership = room_get_visible(room_id=room_id, user=user)
    refusal = access.member_refusal(
        kind=room.kind,
        role=membership.role if membership is not None else None,
        user_active=membership.user.is_active if membership is not None else user.is_active,
    )
    if refusal is not None:
        raise refusal
    assert membership is not None  # member_refusal refuses non-members
    membership.room = room
    return membership


def room_list_for_user(*, user: User, workspace_id: int | None = None) -> QuerySet[Membership]:
    """The user's rooms: of one workspace (the current one, for lists people see), or all of them."""
    memberships = Membership.objects.filter(user=user)
    if workspace_id is not None:
        memberships = memberships.filter(room__workspace_id=workspace_id)
    return memberships.select_related("room", "room__created_by").order_by("room__name", "room__pk")


def room_list_public(*, user: User, workspace: WorkspaceMembership) -> QuerySet[Room]:
    """Public rooms of the user's (current) workspace they have not joined yet; none for guests
    (rooms.access.scoped_kind)."""
    if access.scoped_kind(kind=Room.Kind.PUBLIC, role=None, workspace_role=workspace.role) != Room.Kind.PUBLIC:
        return Room.objects.none()
    return (
        Room.objects.filter(kind=Room.Kind.PUBLIC, workspace_id=workspace.workspace_id)
        .exclude(memberships__user=user)
        .select_related("created_by")
        .order_by("name", "pk")
    )


def room_members(*, room: Room) -> QuerySet[Membership]:
    return Membership.objects.filter(room=room).select_related("user").order_by("user__username")


def user_rooms_state(*, user_id: int) -> dict[str, int]:
    """{room id: last sequence} for every room the user belongs to."""
    rows = Membership.objects.filter(user_id=user_id).values_list("room_id", "room__last_sequence")
    return {str(room_id): last_sequence for room_id, last_sequence in rows}


async def aroom_ids_of(*, user_ids: list[int]) -> dict[int, list[str]]:
    """{user id: the ids of their rooms} for several users in one statement, on the loop's own
    connection (core.asyncdb: no thread hop). Presence announces every user who comes online or
    goes offline to their rooms: a storm's closes are thousands at once, each read was a round trip
    of its own (docs/performance.md). A user in no room is absent."""
    rows = await asyncdb.fetchall(
        "SELECT user_id, room_id FROM rooms_membership WHERE user_id = ANY(%s)", [user_ids], reads=True
    )
    rooms: dict[int, list[str]] = {}
    for row in rows:
        rooms.setdefault(row["user_id"], []).append(str(row["room_id"]))
    return rooms


def rooms_last_sequence(*, room_ids: list[str]) -> dict[str, int]:
    """{room id: last sequence} of existing rooms (no access check: for the process's own use)."""
    rows = Room.objects.filter(pk__in=room_ids).values_list("pk", "last_sequence")
    return {str(room_id): last for room_id, last in rows}


def user_rooms_states(*, user_ids: list[int]) -> dict[int, dict]:
    """For each existing user: {"active": bool, "rooms": {room id: (room payload, role)}}, for
    sockets to check themselves against after an outage (messaging.consumers)."""
    states: dict[int, dict] = {
        pk: {"active": active, "rooms": {}}
        for pk, active in User.objects.filter(pk__in=user_ids).values_list("pk", "is_active")
    }
    memberships = Membership.objects.filter(user_id__in=states).select_related("room", "room__created_by")
    for membership in memberships:
        payload = room_payload(membership.room)
        states[membership.user_id]["rooms"][payload["id"]] = (payload, membership.role)
    return states


def user_find(*, user_ref: object, workspace_id: int | None = None) -> User:
    """A user by numeric id or username; with `workspace_id`, only a member of that workspace (a
    person of another workspace is as unknown as one who does not exist)."""
    people = User.objects.filter(is_active=True)
    if workspace_id is not None:
        people = people.filter(workspace_memberships__workspace_id=workspace_id)
    if isinstance(user_ref, int) or (isinstance(user_ref, str) and user_ref.isdigit()):
        user = people.filter(pk=int(user_ref)).first()
    elif isinstance(user_ref, str) and user_ref and storable_text(user_ref, field="user"):
        user = people.filter(username_is(user_ref)).first()
    else:
        user = None
    if user is None:
        raise NotFound("No such user.", code="user_not_found")
    return user


@dataclass(frozen=True)
class RoomSummary:
    """What room lists show beside a name so that rooms of the same name are told apart and a
    room's life is visible: member count, the newest message's time, and for direct rooms the
    other person (their title)."""

    members: int
    last_message_at: datetime | None
    direct_with: str | None


def room_summaries(*, rooms: Iterable[Room], user: User) -> dict[uuid.UUID, RoomSummary]:
    """{room id: RoomSummary} for the room lists of pages, in three statements whatever their
    number. The newest message is found per room through the (room, sequence) index of the
    partitioned table; days already archived out of PostgreSQL count as no recent message."""
    from messaging.models import Message  # messaging's models import these

    rooms = list(rooms)
    ids = [room.pk for room in rooms]
    if not ids:
        return {}
    counts = dict(
        Membership.objects.filter(room_id__in=ids).values("room_id").annotate(n=Count("pk")).values_list("room_id", "n")
    )
    newest = Message.objects.filter(room_id=OuterRef("pk")).order_by("-sequence").values("created_at")[:1]
    last_at = dict(Room.objects.filter(pk__in=ids).annotate(at=Subquery(newest)).values_list("pk", "at"))
    direct_ids = [room.pk for room in rooms if room.kind == Room.Kind.DIRECT]
    partners = dict(
        Membership.objects.filter(room_id__in=direct_ids).exclude(user=user).values_list("room_id", "user__username")
    )
    return {
        pk: RoomSummary(members=counts.get(pk, 0), last_message_at=last_at.get(pk), direct_with=partners.get(pk))
        for pk in ids
    }
