"""Delivery of notifications: one interface, the senders listed in settings.NOTIFICATION_SENDERS
(dotted paths, in order). Each gets the notices the ones before it let through and returns those
the next ones should get: the inbox (the source of truth) stores them and drops any the user
already has; the socket then tells each user's open tabs. Mobile push would be one more sender
after these (docs/notifications.md)."""

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import Protocol

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from core import sql
from core.events import dumps, send_events, user_group
from messaging.models import Message
from notifications.models import Notification
from notifications.payloads import NotificationPayload, excerpt


@dataclass
class Notice:
    """One user to notify of one message, and why (`kind`, Notification.Kind)."""

    user_id: int
    kind: str
    message: Message  # its sender read with it
    room_name: str
    room_kind: str
    id: int | None = None  # the inbox item, once stored
    created_at: dt.datetime = field(default_factory=timezone.now)

    def payload(self) -> NotificationPayload:
        message = self.message
        sender = message.sender
        return {
            "id": self.id or 0,
            "kind": self.kind,  # type: ignore[typeddict-item]  # one of Notification.Kind
            "room": {"id": str(message.room_id), "name": self.room_name, "kind": self.room_kind},
            "message": {
                "id": str(message.id),
                "sequence": message.sequence,
                "reply_to": str(message.reply_to) if message.reply_to else None,
                "excerpt": excerpt(message.content),
                "deleted": False,
            },
            "actor": {"id": sender.pk, "username": sender.username} if sender is not None else None,
            "created_at": self.created_at.isoformat(),
            "read": False,
        }


class Sender(Protocol):
    def deliver(self, notices: list[Notice]) -> list[Notice]:
        """Deliver `notices`; return those the next sender should get."""
        ...


@cache
def _senders(paths: tuple[str, ...]) -> list[Sender]:
    return [import_string(path)() for path in paths]


def senders() -> list[Sender]:
    return _senders(tuple(settings.NOTIFICATION_SENDERS))


_STORE = f"""
INSERT INTO {Notification._meta.db_table} (user_id, kind, room_id, message_id, message_created_at, actor_id, created_at)
SELECT n.user_id, n.kind, n.room_id, n.message_id, n.message_created_at, n.actor_id, n.created_at
  FROM jsonb_to_recordset(%s::jsonb) AS n(
       idx int, user_id bigint, kind text, room_id uuid, message_id uuid, message_created_at timestamptz,
       actor_id bigint, created_at timestamptz)
 ORDER BY n.idx
    ON CONFLICT (user_id, message_id) DO NOTHING
RETURNING id, user_id, message_id
"""


class InboxSender:
    """Stores the notices as inbox items in one statement, however many there are; a user who
    already has an item for the message (an edit that names them again) gets no second one."""

    def deliver(self, notices: list[Notice]) -> list[Notice]:
        if not notices:
            return notices
        rows = [
            {
                "idx": index,
                "user_id": notice.user_id,
                "kind": notice.kind,
                "room_id": str(notice.message.room_id),
                "message_id": str(notice.message.id),
                "message_created_at": notice.message.created_at.isoformat(),
                "actor_id": notice.message.sender_id,
                "created_at": notice.created_at.isoformat(),
            }
            for index, notice in enumerate(notices)
        ]
        stored = {
            (row["user_id"], uuid.UUID(str(row["message_id"]))): row["id"]
            for row in sql.fetchall(_STORE, [json.dumps(rows)])
        }
        kept = []
        for notice in notices:
            pk = stored.get((notice.user_id, notice.message.id))
            if pk is not None:
                notice.id = pk
                kept.append(notice)
        return kept


class SocketSender:
    """A `notification` frame on each user's own group (every socket, SSE and long-poll stream of
    theirs), with their new unread count: a hint for the badge and the browser notification; the
    inbox over REST stays the truth (docs/protocol.md, Notifications)."""

    def deliver(self, notices: list[Notice]) -> list[Notice]:
        from notifications.selectors import unread_counts

        if not notices:
            return notices
        counts = unread_counts(user_ids=sorted({notice.user_id for notice in notices}))
        frames = (
            {"type": "notification", "notification": notice.payload(), "unread": counts.get(notice.user_id, 0)}
            for notice in notices
        )
        # One publication for them all (an @room in a big room is as many users as members).
        send_events(
            ([user_group(notice.user_id)], {"type": "user.relay", "text": dumps(frame)})
            for notice, frame in zip(notices, frames, strict=True)
        )
        return notices
