"""The JSON shapes of users, rooms and members, the same over REST and the WebSocket.

Each shape is declared once, as a TypedDict: the function that builds it is annotated to return it
(so the type checker rejects a key added or missing), and the OpenAPI schema is generated from it
(`rooms.api.payload_serializer`). The functions stay plain dict builders: they run on the hot path.

`Annotated` metadata documents a field for the schema and changes nothing at run time: a string is
its description, `uuid.UUID`/`datetime` the format of a string field, a `TextChoices` class its values.
"""

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, NotRequired, TypedDict, overload

from rooms.models import Membership, Room

if TYPE_CHECKING:
    from accounts.models import User

UUIDStr = Annotated[str, uuid.UUID]
DateTimeStr = Annotated[str, datetime]


class UserRef(TypedDict):
    """A user as stored inside a message (its reactions): who, not how they look today."""

    id: int
    username: str


class UserPayload(TypedDict):
    id: int
    username: Annotated[str, "The unique handle (sign-in, @mentions)"]
    display_name: Annotated[str, "The name to show: the user's display name, or the username when none is set"]
    avatar_url: Annotated[str | None, "A small square PNG (/avatars/…, relative to the server); null for none"]


class RoomPayload(TypedDict):
    id: UUIDStr
    name: str
    topic: str
    kind: Annotated[str, Room.Kind]
    created_by: Annotated[UserPayload | None, "Null once the creator's account is gone"]
    created_at: DateTimeStr
    last_sequence: Annotated[int, "The room's latest change number (see `changes/`)"]
    role: Annotated[str | None, Membership.Role, "My role in the room; null when I am not a member"]
    workspace: Annotated[int, "The id of the workspace the room belongs to (`GET workspaces/`)"]
    encrypted: Annotated[
        bool, "End-to-end encrypted (direct rooms only, docs/e2ee.md): messages are envelopes; no search, no previews"
    ]


class RoomListEntry(RoomPayload):
    unread: NotRequired[
        Annotated[int, "Messages from others after my read mark, at most 999 (my rooms only, not `?discover=1`)"]
    ]


class MemberPayload(TypedDict):
    user: UserPayload
    role: Annotated[str, Membership.Role]
    joined_at: DateTimeStr


class GoneMemberPayload(TypedDict):
    """The member of a socket `member.update` once they left or were removed (never over REST)."""

    user: UserPayload
    role: None
    joined_at: None


@overload
def user_payload(user: "User") -> UserPayload: ...
@overload
def user_payload(user: None) -> None: ...
@overload
def user_payload(user: "User | None") -> UserPayload | None: ...
def user_payload(user: "User | None") -> UserPayload | None:
    if user is None:
        return None
    # On the hot path (every message's sender): attributes of the row already loaded, no query.
    return {
        "id": user.pk,
        "username": user.username,
        "display_name": user.display_name or user.username,
        "avatar_url": f"/avatars/{user.pk}/{user.avatar}.png" if user.avatar else None,
    }


def user_ref(user: "User") -> UserRef:
    return {"id": user.pk, "username": user.username}


def room_payload(room: Room, *, role: str | None = None) -> RoomPayload:
    return {
        "id": str(room.pk),
        "name": room.name,
        "topic": room.topic,
        "kind": room.kind,
        "created_by": user_payload(room.created_by) if room.created_by_id else None,
        "created_at": room.created_at.isoformat(),
        "last_sequence": room.last_sequence,
        "role": role,
        "workspace": room.workspace_id,
        "encrypted": room.encrypted_since is not None,
    }


def room_list_entry(room: Room, *, role: str | None = None, unread: int | None = None) -> RoomListEntry:
    """A room in `GET rooms/`: with `unread` for the rooms I am in."""
    entry: RoomListEntry = {**room_payload(room, role=role)}
    if unread is not None:
        entry["unread"] = unread
    return entry


def member_payload(membership: Membership) -> MemberPayload:
    return {
        "user": user_payload(membership.user),
        "role": membership.role,
        "joined_at": membership.joined_at.isoformat(),
    }
