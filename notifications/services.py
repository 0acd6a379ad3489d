"""Every write to the inbox and to the levels (docs/notifications.md).

Who is notified of a message is decided here, after the message's transaction committed, and
their inbox items stored, in one statement per batch of messages whatever the size of the room
(`_NOTIFY`); the senders (notifications.senders: the socket's events) deliver the result live. The
send path only hands over the messages that may notify anyone: those with mentions (texts with an
'@' that name a member), replies and those of direct rooms. On the socket's batched path this runs
on the event loop in a task of its own (`_anotify`), so no ack waits for it.

Nothing is lost when the process dies after the commit: each such write leaves a pending row in
its own transaction (PendingNotification); delivering deletes it, and the sweeper
(`pending_deliver`, a Celery beat task) delivers what is left after a few seconds.
"""

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from core import asyncdb, sql
from core.errors import InvalidInput
from core.events import after_answering, dumps, publishing, send_event, user_group
from messaging import mentions
from messaging.models import Message
from notifications import selectors
from notifications.models import Notification, PendingNotification, RoomSetting
from notifications.payloads import NotificationPayload, RoomLevelPayload
from notifications.senders import Notice, senders
from rooms.models import Membership, Room
from rooms.selectors import membership_get

logger = logging.getLogger(__name__)

# For each message: who may be notified and why (rank: the first reason wins), then only those
# still in the room with an active account, never the author, and as their level allows: `mute`
# lets only a mention by name through (docs/notifications.md). Only the messages whose pending row
# this statement deletes count (`claimed`): whoever deletes it delivers, and a row another
# transaction (the sweeper, a second fast path) holds is waited for and then found gone. The items
# are stored by the same statement (the claim and the inbox commit together), one per user and
# message (`ON CONFLICT DO NOTHING`: an edit naming someone again makes no second item), and each
# comes back with its user's unread count for the badge: the unread items in the rooms they are in
# as this statement found them, plus those it stored.
_NOTIFY = f"""
WITH owed AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb)
        AS m(message_id uuid, message_created_at timestamptz, number bigint, room_id uuid, sender_id bigint,
             mentioned bigint[], mention_room bool, thread uuid, edit bool)
), claimed AS (
    DELETE FROM {PendingNotification._meta.db_table} p USING owed
     WHERE p.message_id = owed.message_id AND p.number = owed.number
    RETURNING p.message_id, p.number
), m AS (
    -- One row per message: the sweeper may owe a send and an edit of one message (the send's row
    -- first: it has every reason the edit's has, and more).
    SELECT DISTINCT ON (owed.message_id) owed.*
      FROM owed JOIN claimed ON claimed.message_id = owed.message_id AND claimed.number = owed.number
     ORDER BY owed.message_id, owed.edit
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
), notified AS (
    SELECT c.message_id, m.message_created_at, m.room_id, m.sender_id, c.user_id, c.kind,
           r.name AS room_name, r.kind AS room_kind
      FROM chosen c
      JOIN m ON m.message_id = c.message_id
      JOIN {Room._meta.db_table} r ON r.id = m.room_id
      JOIN {Membership._meta.db_table} ms ON ms.room_id = m.room_id AND ms.user_id = c.user_id
      JOIN {User._meta.db_table} u ON u.id = c.user_id AND u.is_active
      LEFT JOIN {RoomSetting._meta.db_table} s ON s.room_id = m.room_id AND s.user_id = c.user_id
     WHERE c.user_id <> m.sender_id
       AND (coalesce(s.level, '{RoomSetting.Level.MENTIONS}') <> '{RoomSetting.Level.MUTE}' OR c.kind = 'mention')
), stored AS (
    INSERT INTO {Notification._meta.db_table}
        (user_id, kind, room_id, message_id, message_created_at, actor_id, created_at)
    SELECT user_id, kind, room_id, message_id, message_created_at, sender_id, now()
      FROM notified ORDER BY message_id, user_id
        ON CONFLICT (user_id, message_id) DO NOTHING
    RETURNING id, user_id, message_id, created_at
), unread AS (
    SELECT n.user_id, count(*) AS n
      FROM {Notification._meta.db_table} n
     WHERE n.user_id IN (SELECT user_id FROM stored) AND n.read_at IS NULL
       AND EXISTS (SELECT 1 FROM {Membership._meta.db_table} ms WHERE ms.room_id = n.room_id AND ms.user_id = n.user_id)
     GROUP BY n.user_id
)
SELECT s.id, s.user_id, s.message_id, s.created_at, f.kind, f.room_name, f.room_kind,
       coalesce(u.n, 0) + count(*) OVER (PARTITION BY s.user_id) AS unread
  FROM stored s
  JOIN notified f ON f.message_id = s.message_id AND f.user_id = s.user_id
  LEFT JOIN unread u ON u.user_id = s.user_id
 ORDER BY s.id
"""


@dataclass
class Owed:
    """The notifications one write owes: its message, the number its pending row carries (the
    message's changed_sequence as that write left it) and whether the write was an edit."""

    message: Message
    number: int
    edit: bool = False


def _owed_json(owed: list[Owed]) -> str:
    return json.dumps(
        [
            {
                "message_id": str(item.message.id),
                "message_created_at": item.message.created_at.isoformat(),
                "number": item.number,
                "room_id": str(item.message.room_id),
                "sender_id": item.message.sender_id,
                "mentioned": sorted(mentions.user_ids(item.message.mentions)),
                "mention_room": bool(item.message.mentions and item.message.mentions["room"]),
                "thread": str(item.message.reply_to) if item.message.reply_to and not item.edit else None,
                "edit": item.edit,
            }
            for item in owed
        ]
    )


def _notices(owed: list[Owed], rows: list[dict]) -> list[Notice]:
    """_NOTIFY's rows as the notices stored: the users to tell, why, and their unread counts."""
    by_id = {item.message.id: item.message for item in owed}
    return [
        Notice(
            user_id=row["user_id"],
            kind=row["kind"],
            message=by_id[row["message_id"]],
            room_name=row["room_name"],
            room_kind=row["room_kind"],
            id=row["id"],
            created_at=row["created_at"],
            unread=row["unread"],
        )
        for row in rows
    ]


def _announce(notices: list[Notice]) -> None:
    """Hand the stored notices to each sender in turn (the socket's frames; mobile push would be
    one more). A sender that fails is logged and loses only its own delivery: the items are in
    the inbox, which stays the truth."""
    if not notices:
        return
    for sender in senders():
        try:
            sender.deliver(notices)
        except Exception:
            logger.exception("%s failed to deliver %s notifications", type(sender).__name__, len(notices))


def _store(owed: list[Owed]) -> list[Notice]:
    """Claim the pending rows of `owed`, work out who to notify and store their items: one
    statement (_NOTIFY), in the caller's transaction."""
    return _notices(owed, sql.fetchall(_NOTIFY, [_owed_json(owed)]))


def _deliver(owed: list[Owed]) -> list[Notice]:
    """Claim, work out and store, then announce (the socket's events go out after the caller's
    transaction commits)."""
    notices = _store(owed)
    _announce(notices)
    return notices


def _notify(owed: list[Owed]) -> None:
    """The fast path, right after the writes committed. A failure is logged, never raised: the
    messages are sent whatever happens, and the rolled-back claim leaves the pending rows to the
    sweeper (`pending_deliver`)."""
    try:
        with transaction.atomic():
            _deliver(owed)
    except Exception:
        logger.exception("notifying of %s messages failed; the sweeper will retry", len(owed))


def _once_committed(work: Callable[[], None]) -> None:
    """`work` after the current transaction commits (at once outside one); from a service the
    socket ran (core.events.call_service), after the socket's answer, in a task of its own."""

    def committed() -> None:
        if not after_answering(work):
            work()

    transaction.on_commit(committed)


def _record(owed: list[Owed]) -> None:
    """The pending rows of `owed`, in the current transaction: one INSERT."""
    PendingNotification.objects.bulk_create(
        [
            PendingNotification(
                message_id=item.message.id,
                message_created_at=item.message.created_at,
                room_id=item.message.room_id,
                number=item.number,
                edit=item.edit,
            )
            for item in owed
        ],
        ignore_conflicts=True,
    )


def notify_sent(*, messages: list[Message]) -> None:
    """Inside the transaction that writes them (the ORM's paths: replies, attachments): new
    messages that may notify someone (mentions, a direct room, a reply) owe their notices (a
    pending row each, committed with them), delivered once committed (see `_once_committed`)."""
    owed = [Owed(message, message.changed_sequence) for message in messages]
    _record(owed)
    _once_committed(partial(_notify, owed))


def _owed_by_send(messages: list[Message]) -> list[Owed]:
    # messaging.services._SEND wrote their pending rows, numbered by the message's sequence.
    return [Owed(message, message.sequence) for message in messages]


def notify_committed(*, messages: list[Message]) -> None:
    """The batched send's messages that may notify someone, once committed (their pending rows
    were written by the send's own statement, messaging.services._SEND): their notices, now."""
    _once_committed(partial(_notify, _owed_by_send(messages)))


_running: set[asyncio.Task] = set()


async def _anotify(owed: list[Owed]) -> None:
    """`_notify` on the event loop: _NOTIFY in one round trip on the process's own asyncio
    connection (core.asyncdb; in autocommit the statement is its own transaction: the claim and
    the items commit together), then the senders. No database thread: under load, a thread's
    BEGIN, statements and COMMIT each waited for the GIL behind the busy loop (docs/performance.md).
    A failure is logged, never raised: the pending rows are left to the sweeper."""
    try:
        rows = await asyncdb.fetchall(_NOTIFY, [_owed_json(owed)], changes=True)
    except Exception:
        logger.exception("notifying of %s messages failed; the sweeper will retry", len(owed))
        return
    async with publishing():
        _announce(_notices(owed, rows))


def notify_sent_soon(*, messages: list[Message]) -> None:
    """`notify_committed` from the event loop (the socket's batched sends): in a task of its own,
    so that the acks and the next batch wait for nothing."""
    task = asyncio.get_running_loop().create_task(_anotify(_owed_by_send(messages)))
    _running.add(task)
    task.add_done_callback(_running.discard)


def notify_edited(*, message: Message, mentioned_before: mentions.Mentions | None) -> None:
    """Inside the edit's transaction: those the edit names now and did not before are owed a
    notice (someone who already has an item for the message gets no second one)."""
    now = message.mentions
    new_users = mentions.user_ids(now) - mentions.user_ids(mentioned_before)
    new_room = bool(now and now["room"]) and not (mentioned_before and mentioned_before["room"])
    if new_users or new_room:
        owed = [Owed(message, message.changed_sequence, edit=True)]
        _record(owed)
        _once_committed(partial(_notify, owed))


# -- the sweeper ------------------------------------------------------------------------------------

SWEEP_BATCH = 500
MAX_ATTEMPTS = 5


def _sweep_batch(rows: list[PendingNotification]) -> int:
    """Deliver what `rows` owe (locked by the caller's transaction); rows whose message is gone
    (deleted, or its room) owe nothing and are dropped. Returns the notices delivered."""
    found = {
        message.id: message
        for message in Message.objects.select_related("sender").filter(
            id__in=[row.message_id for row in rows], created_at__in={row.message_created_at for row in rows}
        )
    }
    owed, gone = [], []
    for row in rows:
        message = found.get(row.message_id)
        if message is None or message.deleted_at is not None:
            gone.append(row.pk)
        else:
            owed.append(Owed(message, row.number, edit=row.edit))
    if gone:
        PendingNotification.objects.filter(pk__in=gone).delete()
    return len(_deliver(owed)) if owed else 0


def pending_deliver(*, older_than: float | None = None) -> int:
    """Deliver the notifications still owed `older_than` seconds after their write (default
    settings.NOTIFICATION_SWEEP_AFTER_SECONDS): those a process that died after its commit never
    delivered. Rows are locked SKIP LOCKED, so sweepers and fast paths never wait on each other's
    work twice; a batch that fails is retried row by row, and a row that fails MAX_ATTEMPTS times
    is given up (logged). Returns the notices delivered (inbox items made)."""
    if older_than is None:
        older_than = settings.NOTIFICATION_SWEEP_AFTER_SECONDS
    delivered = 0
    failed: set[int] = set()
    while True:
        cutoff = timezone.now() - dt.timedelta(seconds=older_than)
        rows: list[PendingNotification] = []
        try:
            with transaction.atomic():
                rows = list(
                    PendingNotification.objects.select_for_update(skip_locked=True)
                    .filter(created_at__lte=cutoff)
                    .exclude(pk__in=failed)
                    .order_by("id")[:SWEEP_BATCH]
                )
                if not rows:
                    return delivered
                delivered += _sweep_batch(rows)
        except Exception:
            if not rows:  # the rows could not even be read (PostgreSQL away): the next run retries
                raise
            logger.exception("delivering %s pending notifications failed; trying each alone", len(rows))
            for row in rows:
                try:
                    with transaction.atomic():
                        locked = list(PendingNotification.objects.select_for_update(skip_locked=True).filter(pk=row.pk))
                        if locked:
                            delivered += _sweep_batch(locked)
                except Exception:
                    logger.exception("delivering the notifications of message %s failed", row.message_id)
                    failed.add(row.pk)
                    _give_up_after_attempts(row.pk)
        if len(rows) < SWEEP_BATCH:
            return delivered


def _give_up_after_attempts(pk: int) -> None:
    with transaction.atomic():
        updated = PendingNotification.objects.filter(pk=pk).update(attempts=F("attempts") + 1)
        if updated:
            dropped, _ = PendingNotification.objects.filter(pk=pk, attempts__gte=MAX_ATTEMPTS).delete()
            if dropped:
                logger.error("gave up the notifications of pending row %s after %s attempts", pk, MAX_ATTEMPTS)


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
