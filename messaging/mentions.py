"""@mentions in a message's text (docs/notifications.md).

`@username` names a member of the room (usernames are matched whatever their case, as sign-in
does); `@room` names everyone in it and counts only from the room's owners and admins
(rooms.access.may_mention_room): from anyone else it stays plain text. Text in code (`code`,
fenced blocks) mentions nobody.

This is on the send path of every message, so the cheap test comes first: text without an '@'
costs one substring check (`names_in`) and nothing else. Names are resolved to users in the
statement that stores the message (messaging.services._SEND), or by `resolve` on the other write
paths (edits, replies); the message then carries `mentions`, `{"users": [{id, username}, ...],
"room": bool}`, or null for none.
"""

import re
import uuid
from typing import TypedDict

from django.db.models.functions import Lower

from rooms.models import Membership

ROOM = "room"  # `@room`: every member (owners and admins only)
MAX_NAMES = 50  # distinct names looked up per message; the rest of a long list is plain text

# What may precede the '@' (so "bob@example.com" mentions nobody) and what a name is made of:
# Django's username characters except '@' (a name ends at the next '@'). A trailing '.', as at
# the end of a sentence ("thanks @bob."), is not part of the name.
_MENTION = re.compile(r"(?<![\w@.+-])@([\w.+-]+)")
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.DOTALL)


class MentionedUser(TypedDict):
    id: int
    username: str


class Mentions(TypedDict):
    users: list[MentionedUser]
    room: bool


def names_in(content: str) -> tuple[list[str], bool]:
    """The usernames mentioned in `content` (lowercased, each once, in order) and whether it says
    `@room`. No regular expression runs unless the text contains an '@'."""
    if "@" not in content:
        return [], False
    if "`" in content:
        content = _CODE.sub(" ", content)
    names: list[str] = []
    room = False
    for match in _MENTION.finditer(content):
        name = match.group(1).rstrip(".").lower()
        if not name:
            continue
        if name == ROOM:
            room = True
        elif name not in names and len(names) < MAX_NAMES:
            names.append(name)
    return names, room


def resolve(*, room_id: uuid.UUID, content: str, may_mention_room: bool) -> Mentions | None:
    """The mentions of `content` in this room (for the write paths outside _SEND): the members
    among the names (one query, only when there are names), and `@room` when the author may."""
    names, room = names_in(content)
    if not names and not room:
        return None
    users: list[MentionedUser] = []
    if names:
        rows = (
            Membership.objects.filter(room_id=room_id)
            .annotate(lowered=Lower("user__username"))
            .filter(lowered__in=names)
            .order_by("user_id")
            .values_list("user_id", "user__username")
        )
        users = [{"id": user_id, "username": username} for user_id, username in rows]
    room = room and may_mention_room
    if not users and not room:
        return None
    return {"users": users, "room": room}


def user_ids(mentions: Mentions | None) -> set[int]:
    return {user["id"] for user in mentions["users"]} if mentions else set()
