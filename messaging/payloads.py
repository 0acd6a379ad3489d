"""The JSON shapes of messages and of numbered room changes, used by REST, the socket and sync.

Declared once as TypedDicts, from which the OpenAPI schema is generated (see rooms.payloads). The
functions are on the hot path (every message sent, every synced message): plain dict builders.
"""

from typing import Annotated, Literal, NotRequired, TypedDict, cast

from attachments.payloads import AttachmentPayload
from e2ee.envelope import payload_of
from e2ee.payloads import E2eePayload
from messaging.formatting import message_html
from messaging.mentions import MentionedUser
from messaging.models import Message, MessageRevision
from rooms.payloads import DateTimeStr, UserPayload, UserRef, UUIDStr, user_payload

ChangeType = Literal["message.new", "message.edit", "message.delete", "message.update"]


class ReactionPayload(TypedDict):
    emoji: Annotated[str, "One emoji"]
    count: int
    users: Annotated[list[UserRef], "Who reacted, in the order they did"]


class MessagePayload(TypedDict):
    id: UUIDStr
    room: UUIDStr
    sequence: Annotated[int, "The message's position in the room's timeline"]
    sender: Annotated[UserPayload | None, "Null once the sender's account is gone"]
    content: Annotated[str, "Empty for a deleted message"]
    html: Annotated[
        str, "The content rendered from its Markdown subset and sanitised (messaging/formatting.py); empty when deleted"
    ]
    mentions: Annotated[list[MentionedUser], "The room's members the text @mentions (docs/notifications.md)"]
    mentions_room: Annotated[bool, "The text says @room and its author may (owners and admins)"]
    client_msg_id: UUIDStr
    created_at: DateTimeStr
    edited_at: DateTimeStr | None
    deleted: bool
    changed_sequence: Annotated[int, "The number of the message's latest change: a higher one is a newer copy"]
    reply_to: Annotated[UUIDStr | None, "The thread's root message, for a reply"]
    reply_count: Annotated[int, "Replies in this message's thread that are not deleted"]
    last_reply_at: DateTimeStr | None
    reactions: list[ReactionPayload]
    attachments: Annotated[
        list[AttachmentPayload], "Files and images sent with the message (docs/attachments.md); empty when deleted"
    ]
    e2ee: NotRequired[
        Annotated[E2eePayload, "Only in end-to-end encrypted rooms (docs/e2ee.md): an envelope, or the notice"]
    ]


class ChangeFrame(TypedDict):
    """A numbered change of a room's history: the message in its latest state."""

    type: ChangeType
    room: UUIDStr
    sequence: Annotated[int, "The number of this change in the room's history"]
    message: MessagePayload


class RevisionPayload(TypedDict):
    content: str
    written_at: DateTimeStr
    replaced_at: DateTimeStr


class MessageReceipts(TypedDict):
    """Who received and who read one of my messages (messaging.selectors.message_receipts)."""

    message: UUIDStr
    sequence: int
    delivered_to: list[UserPayload]
    read_by: list[UserPayload]


def message_payload(message: Message) -> MessagePayload:
    deleted = message.deleted_at is not None
    # An envelope or the encryption notice (e2ee/envelope.py): no text, no server-side rendering.
    sealed = None if deleted else payload_of(message.content)
    payload: MessagePayload = {
        "id": str(message.id),
        "room": str(message.room_id),
        "sequence": message.sequence,
        "sender": user_payload(message.sender),
        "content": "" if deleted or sealed else message.content,
        "html": "" if deleted or sealed else message_html(message.id, message.changed_sequence, message.content),
        "mentions": message.mentions["users"] if message.mentions and not deleted else [],
        "mentions_room": bool(message.mentions and message.mentions["room"] and not deleted),
        "client_msg_id": str(message.client_msg_id),
        "created_at": message.created_at.isoformat(),
        "edited_at": message.edited_at.isoformat() if message.edited_at else None,
        "deleted": deleted,
        "changed_sequence": message.changed_sequence,
        "reply_to": str(message.reply_to) if message.reply_to else None,
        "reply_count": message.reply_count,
        "last_reply_at": message.last_reply_at.isoformat() if message.last_reply_at else None,
        "reactions": [
            {"emoji": r["emoji"], "count": len(r["users"]), "users": r["users"]} for r in message.reactions or ()
        ],
        "attachments": message.attachments or [],  # stored as the payload shows them (attachments.binding)
    }
    if sealed is not None:
        payload["e2ee"] = cast(E2eePayload, sealed)
    return payload


def change_type(message: Message) -> ChangeType:
    """What the message's latest numbered change was."""
    if message.deleted_at is not None:
        return "message.delete"
    if message.change_kind is not None:  # a reaction, or a reply in its thread
        return "message.update"
    if message.changed_sequence != message.sequence:
        return "message.edit"
    return "message.new"


def change_frame(message: Message) -> ChangeFrame:
    """A numbered room event. `sequence` is the number of the change (for a new message, the
    message's own sequence); clients track the highest one they have seen per room."""
    return {
        "type": change_type(message),
        "room": str(message.room_id),
        "sequence": message.changed_sequence,
        "message": message_payload(message),
    }


def revision_payload(revision: MessageRevision) -> RevisionPayload:
    return {
        "content": revision.content,
        "written_at": revision.written_at.isoformat(),
        "replaced_at": revision.replaced_at.isoformat(),
    }
