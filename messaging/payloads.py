"""The JSON shapes of messages and of numbered room changes, used by REST, the socket and sync."""

from messaging.models import Message
from rooms.payloads import user_payload


def message_payload(message: Message) -> dict:
    deleted = message.deleted_at is not None
    return {
        "id": str(message.id),
        "room": str(message.room_id),
        "sequence": message.sequence,
        "sender": user_payload(message.sender),
        "content": "" if deleted else message.content,
        "client_msg_id": str(message.client_msg_id),
        "created_at": message.created_at.isoformat(),
        "edited_at": message.edited_at.isoformat() if message.edited_at else None,
        "deleted": deleted,
    }


def change_type(message: Message) -> str:
    """What the message's latest numbered change was."""
    if message.deleted_at is not None:
        return "message.delete"
    if message.changed_sequence != message.sequence:
        return "message.edit"
    return "message.new"


def change_frame(message: Message) -> dict:
    """A numbered room event. `sequence` is the number of the change (for a new message, the
    message's own sequence); clients track the highest one they have seen per room."""
    return {
        "type": change_type(message),
        "room": str(message.room_id),
        "sequence": message.changed_sequence,
        "message": message_payload(message),
    }
