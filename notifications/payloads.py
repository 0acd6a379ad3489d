"""The JSON shapes of inbox items and room levels: REST and the socket's `notification` frame."""

from typing import Annotated, Literal, TypedDict

from e2ee.envelope import is_marked
from rooms.payloads import DateTimeStr, UUIDStr

Kind = Literal["mention", "room", "reply", "direct"]
Level = Literal["all", "mentions", "mute"]

EXCERPT_LENGTH = 200  # characters of the message's text an item shows
# What an end-to-end encrypted message's item says instead (docs/e2ee.md: no previews).
ENCRYPTED_EXCERPT = "Encrypted message"


class NotificationRoom(TypedDict):
    id: UUIDStr
    name: str
    kind: str


class NotificationMessage(TypedDict):
    id: UUIDStr
    sequence: Annotated[int, "The message's position in its room: open the room there (#message-<sequence>)"]
    reply_to: Annotated[UUIDStr | None, "The thread's root, for a reply"]
    excerpt: Annotated[str, "The start of the message's text as it is now; empty once deleted or archived"]
    deleted: bool


class NotificationActor(TypedDict):
    id: int
    username: str


class NotificationPayload(TypedDict):
    id: int
    kind: Annotated[Kind, "mention (@you), room (@room), reply (in a thread of yours), direct (a direct message)"]
    room: NotificationRoom
    message: NotificationMessage
    actor: Annotated[NotificationActor | None, "Who wrote the message; null once their account is gone"]
    created_at: DateTimeStr
    read: bool


class RoomLevelPayload(TypedDict):
    room: UUIDStr
    level: Annotated[Level, "all, mentions (the default) or mute (docs/notifications.md)"]


def excerpt(content: str) -> str:
    if is_marked(content):  # an envelope: the server cannot read it, so there is no preview
        return ENCRYPTED_EXCERPT
    text = " ".join(content.split())
    return text if len(text) <= EXCERPT_LENGTH else text[: EXCERPT_LENGTH - 1] + "…"
