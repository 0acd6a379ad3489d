"""Every write to the inbox and to the levels (docs/notifications.md).

Who is notified of a message is decided here, after the message's transaction committed, in one
statement per batch of messages whatever the size of the room (`_RECIPIENTS`); the senders
(notifications.senders: the inbox's one INSERT, then the socket's events) deliver the result. The
send path only hands over the messages that may notify anyone: those with mentions (texts with an
'@' that name a member) and those of direct rooms; replies come from the thread path. On the
socket's batched path this runs in a task of its own, so no ack waits for it.
"""

import asyncio
import json
import logging
from collections.abc import Callable
from functools import partial

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from core.errors import InvalidInput
from core.events import after_answering, call_service, dumps, send_event, user_group
from messaging import mentions
from messaging.models import Message
from notifications import selectors
from notifications.models import Notification, RoomSetting
from notifications.payloads import NotificationPayload, RoomLevelPayload
from notifications.senders import Notice, senders
from rooms.models import Membership, Room
from rooms.selectors import membership_get

logger = logging.getLogger(__name__)

# For each message: who may be notified and why (rank: the first reason wins), then only those
# still in the room with an active account, never the author, and as their level allows: `mute`
# lets only a mention by name through (docs/notifications.md).
_RECIPIENTS = f"""
WITH m AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb)
        AS m(message_id uuid, room_id uuid, sender_id bigint, mentioned bigint[], mention_room bool,
             thread uuid, edit bool)
), candidate AS (
    SELECT m.message_id, u.user_id, 'mention' AS kind, 1 AS rank
      FROM m CROSS JOIN LATERAL unnest(m.mentioned) AS u(user_id)
    UNION ALL
    SELECT m.message_id, ms.user_id, 'room', 2
      FROM m JOIN {Membership._meta.db_table} ms ON ms.room_id = m.room_id
     WHERE m.mention_room
    UNION ALL
    -- The thread's root author (messaging's message_id index) and everyone who replied in it
    -- (its message_thread index).
    SELECT m.message_id, t.sender_id, 'reply', 3
      FROM m JOIN {Message._meta.db_table} t ON t.id = m.thread AND t.room_id = m.room_id
     WHERE NOT m.edit
    UNION ALL
    SELECT m.message_id, t.sender_id, 'reply', 3
      FROM m JOIN {Message._meta.db_table} t ON t.room_id = m.room_id AND t.reply_to = m.thread
     WHERE NOT m.edit
    UNION ALL
    SELECT m.message_id, ms.user_id, 'direct', 4
      FROM m JOIN {Room._meta.db_table} r ON r.id = m.room_id AND r.kind = '{Room.Kind.DIRECT}'
      JOIN {Membership._meta.db_table} ms ON ms.room_id = m.room_id
     WHERE NOT m.edit
), chosen AS (
    SELECT DISTINCT ON (message_id, user_id) message_id, user_id, kind
      FROM candidate WHERE user_id IS NOT NULL
     ORDER BY message_id, user_id, rank
)
SELECT c.message_id, c.user_id, c.kind, r.name AS room_name, r.kind AS room_kind
  FROM chosen c
  JOIN m ON m.message_id = c.message_id
  JOIN {Room._meta.db_table} r ON r.id = m.room_id
  JOIN {Membership._meta.db_table} ms ON ms.room_id = m.room_id AND ms.user_id = c.user_id
  JOIN {User._meta.db_table} u ON u.id = c.user_id AND u.is_active
  LEFT JOIN {RoomSetting._meta.db_table} s ON s.room_id = m.room_id AND s.user_id = c.user_id
 WHERE c.user_id <> m.sender_id
   AND (coalesce(s.level, '{RoomSetting.Level.MENTIONS}') <> '{RoomSetting.Level.MUTE}' OR c.kind = 'mention')
 ORDER BY m.message_id, c.user_id
"""


def _recipients(messages: list[Message], *, edit: bool) -> list[Notice]:
    rows = [
        {
            "message_id": str(message.id),
            "room_id": str(message.room_id),
            "sender_id": message.sender_id,
            "mentioned": sorted(mentions.user_ids(message.mentions)),
            "mention_room": bool(message.mentions and message.mentions["room"]),
            "thread": str(message.reply_to) if message.reply_to and not edit else None,
            "edit": edit,
        }
        for message in messages
    ]
    by_id = {message.id: message for message in messages}
    with connection.cursor() as cursor:
        cursor.execute(_RECIPIENTS, [json.dumps(rows)])
        return [
            Notice(user_id=user_id, kind=kind, message=by_id[message_id], room_name=room_name, room_kind=room_kind)
            for message_id, user_id, kind, room_name, room_kind in cursor.fetchall()
        ]


def _notify(messages: list[Message], *, edit: bool = False) -> None:
    """Work out who to notify and hand them to each sender in turn. A failure is logged, never
    raised: the messages are sent whatever happens to their notifications."""
    try:
        with transaction.atomic():  # the items all or none; the socket's events after their commit
            notices = _recipients(messages, edit=edit)
            for sender in senders():
                notices = sender.deliver(notices)
    except Exception:
        logger.exception("notifying of %s messages failed", len(messages))


def _once_committed(work: Callable[[], None]) -> None:
    """`work` after the current transaction commits (at once outside one); from a service the
    socket ran (core.events.call_service), after the socket's answer, in a task of its own."""

    def committed() -> None:
        if not after_answering(work):
            work()

    transaction.on_commit(committed)


def notify_sent(*, messages: list[Message]) -> None:
    """New messages that may notify someone (mentions, a direct room, a reply): their notices,
    once committed (see `_once_committed`)."""
    _once_committed(partial(_notify, list(messages)))


_running: set[asyncio.Task] = set()


def notify_sent_soon(*, messages: list[Message]) -> None:
    """`notify_sent` from the event loop (the socket's batched sends, already committed): in a
    task of its own, on a database thread, so that the acks and the next batch wait for nothing."""
    task = asyncio.get_running_loop().create_task(call_service(partial(_notify, list(messages))))
    _running.add(task)
    task.add_done_callback(_running.discard)


def notify_edited(*, message: Message, mentioned_before: mentions.Mentions | None) -> None:
    """An edit changed a message's mentions: those it names now and did not before are notified
    (someone who already has an item for the message gets no second one)."""
    now = message.mentions
    new_users = mentions.user_ids(now) - mentions.user_ids(mentioned_before)
    new_room = bool(now and now["room"]) and not (mentioned_before and mentioned_before["room"])
    if new_users or new_room:
        _once_committed(partial(_notify, [message], edit=True))


# -- the inbox ----------------------------------------------------------------------------------


def _announce_read(user: User, ids: list[int] | None) -> int:
    unread = selectors.unread_count(user=user)
    frame = {"type": "notification.read", "ids": ids, "unread": unread}
    send_event([user_group(user.pk)], {"type": "user.relay", "text": dumps(frame)})
    return unread


def notification_read(*, user: User, notification_id: object) -> tuple[NotificationPayload, int]:
    """Mark one of my items read (again: no change). Returns it and my unread count; the user's
    other tabs hear `notification.read`."""
    with transaction.atomic():
        item = selectors.notification_get(user=user, notification_id=notification_id)
        changed = Notification.objects.filter(pk=item.pk, read_at__isnull=True).update(read_at=timezone.now())
        item.refresh_from_db(fields=["read_at"])
        unread = _announce_read(user, [item.pk]) if changed else selectors.unread_count(user=user)
    return selectors.item_payload(item, selectors.item_message(item)), unread


def notifications_read_all(*, user: User, room_id: object = None) -> tuple[int, int]:
    """Mark all my items read (or those of one room of mine). Returns (how many changed, unread)."""
    with transaction.atomic():
        items = selectors.visible_items(user.pk).filter(read_at__isnull=True)
        if room_id is not None:
            items = items.filter(room_id=membership_get(room_id=room_id, user=user).room.pk)
        changed = items.update(read_at=timezone.now())
        unread = _announce_read(user, None) if changed else selectors.unread_count(user=user)
    return changed, unread


# -- levels ---------------------------------------------------------------------------------------


def _clean_level(level: object) -> str:
    if not isinstance(level, str) or level not in RoomSetting.Level.values:
        choices = ", ".join(RoomSetting.Level.values)
        raise InvalidInput(f"level must be one of {choices}.", fields={"level": [f"One of {choices}."]})
    return level


def room_level_set(*, user: User, room_id: object, level: object) -> RoomLevelPayload:
    """Set my notification level in a room I am in. The user's other tabs hear
    `notification.level` (a tab shows browser notifications by it)."""
    level = _clean_level(level)
    with transaction.atomic():
        membership = membership_get(room_id=room_id, user=user)
        RoomSetting.objects.update_or_create(user=user, room_id=membership.room.pk, defaults={"level": level})
        payload: RoomLevelPayload = {"room": str(membership.room.pk), "level": level}  # type: ignore[typeddict-item]
        frame = {"type": "notification.level", **payload}
        send_event([user_group(user.pk)], {"type": "user.relay", "text": dumps(frame)})
    return payload
