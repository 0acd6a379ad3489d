"""Delivery of notifications: one interface, the senders listed in settings.NOTIFICATION_SENDERS
(dotted paths, in order). Each gets the notices once they are stored in the inbox (the source of
truth, written by notifications.services' one statement, which also drops any item a user already
has): the socket tells each user's open tabs; mobile push would be one more sender
(docs/notifications.md). On the socket's path senders run on the event loop: they must not block
(hand slow work, such as a push service's HTTP call, to a queue)."""

import datetime as dt
from dataclasses import dataclass, field
from functools import cache
from typing import Protocol

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from core.events import dumps, send_events, user_group
from messaging.models import Message
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
    unread: int = 0  # the user's unread items once this one was stored (a hint for the badge)

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
    def deliver(self, notices: list[Notice]) -> None:
        """Deliver `notices` (stored, each with its item's id and the user's unread count)."""
        ...


@cache
def _senders(paths: tuple[str, ...]) -> list[Sender]:
    return [import_string(path)() for path in paths]


def senders() -> list[Sender]:
    return _senders(tuple(settings.NOTIFICATION_SENDERS))


class SocketSender:
    """A `notification` frame on each user's own group (every socket, SSE and long-poll stream of
    theirs), with their new unread count: a hint for the badge and the browser notification; the
    inbox over REST stays the truth (docs/protocol.md, Notifications)."""

    def deliver(self, notices: list[Notice]) -> None:
        # One publication for them all (an @room in a big room is as many users as members).
        send_events(
            (
                [user_group(notice.user_id)],
                {
                    "type": "user.relay",
                    "text": dumps({"type": "notification", "notification": notice.payload(), "unread": notice.unread}),
                },
            )
            for notice in notices
        )
