"""The one JSON shape of a message, used by REST, the socket and sync."""

from messaging.models import Message


def message_payload(message: Message) -> dict:
    sender = message.sender
    return {
        "id": str(message.id),
        "room": str(message.room_id),
        "sequence": message.sequence,
        "sender": {"id": sender.pk, "username": sender.username} if sender else None,
        "content": message.content,
        "client_msg_id": str(message.client_msg_id),
        "created_at": message.created_at.isoformat(),
    }
