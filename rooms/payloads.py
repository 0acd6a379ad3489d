"""The JSON shapes of rooms and members, the same over REST and the WebSocket."""

from rooms.models import Membership, Room


def user_payload(user) -> dict | None:
    if user is None:
        return None
    return {"id": user.pk, "username": user.username}


def room_payload(room: Room, *, role: str | None = None) -> dict:
    return {
        "id": str(room.pk),
        "name": room.name,
        "topic": room.topic,
        "kind": room.kind,
        "created_by": user_payload(room.created_by) if room.created_by_id else None,
        "created_at": room.created_at.isoformat(),
        "last_sequence": room.last_sequence,
        "role": role,
    }


def member_payload(membership: Membership) -> dict:
    return {
        "user": user_payload(membership.user),
        "role": membership.role,
        "joined_at": membership.joined_at.isoformat(),
    }
