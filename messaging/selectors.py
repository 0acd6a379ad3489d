import uuid

from django.conf import settings
from django.db import connection

from accounts.models import User
from config.db_router import history_database
from core import asyncdb
from core.errors import ApplicationError, Conflict, Forbidden, NotFound
from core.loops import per_loop
from messaging import archive
from messaging.models import Message, MessageRevision
from rooms import access
from rooms.models import Membership
from rooms.payloads import user_payload
from rooms.selectors import membership_get


class Archived(Conflict):
    code = "archived"
    message = "This message is archived and can no longer be changed."


def _clamp_limit(limit: int | None) -> int:
    if limit is None:
        return 50
    return max(1, min(int(limit), settings.MESSAGE_PAGE_MAX))


def messages_page(
    *,
    user: User,
    room_id: object,
    after_sequence: int | None = None,
    before_sequence: int | None = None,
    limit: int | None = None,
) -> tuple[list[Message], bool]:
    """A page of a room's messages and whether more exist in that direction.

    `after_sequence` pages forward (oldest first); `before_sequence` pages back (newest first);
    neither gives the newest page, newest first. Pages reach seamlessly into archived days.
    """
    membership = membership_get(room_id=room_id, user=user)
    room_pk = membership.room.pk
    limit = _clamp_limit(limit)
    forward = after_sequence is not None
    # Scrolling back tolerates replication lag (those messages are old); forward pages do not.
    database = history_database() if before_sequence is not None and not forward else "default"
    messages = Message.objects.using(database).filter(room_id=room_pk).select_related("sender")
    if forward:
        messages = messages.filter(sequence__gt=after_sequence).order_by("sequence")
    else:
        if before_sequence is not None:
            messages = messages.filter(sequence__lt=before_sequence)
        messages = messages.order_by("-sequence")
    rows = list(messages[: limit + 1])

    # Archived days can only hold messages this page might include if their range overlaps it.
    def overlaps(span: dict) -> bool:
        if forward:
            beyond = len(rows) <= limit or span["first"] < rows[-1].sequence
            return span["last"] > after_sequence and beyond
        below = before_sequence is None or span["first"] < before_sequence
        return below and (len(rows) <= limit or span["last"] > rows[-1].sequence)

    keys = [key for key, span in archive.archived_spans(room_pk) if overlaps(span)]
    if keys:
        cold = [
            m
            for m in archive.archived_messages(room_pk, keys)
            if (after_sequence is not None and m.sequence > after_sequence)  # forward
            or (not forward and (before_sequence is None or m.sequence < before_sequence))
        ]
        rows = sorted(rows + _with_senders(cold), key=lambda m: m.sequence, reverse=not forward)[: limit + 1]
    return rows[:limit], len(rows) > limit


def _with_senders(messages: list[Message]) -> list[Message]:
    """Attach sender users to archived messages with one query."""
    senders = User.objects.in_bulk({m.sender_id for m in messages if m.sender_id})
    for message in messages:
        message.sender = senders.get(message.sender_id)
    return messages


def changes_page(
    *, user: User, room_id: object, after_sequence: int, limit: int | None = None, until_sequence: int | None = None
) -> tuple[list[Message], bool, int]:
    """Everything that changed in a room after `after_sequence`, in number order: new messages,
    edits (latest text) and deletions (tombstones), each message once in its latest state.

    Returns (messages, has_more, cursor). `cursor` is the number to resume from: the client has now
    seen every change up to it. Rows are bounded by the room's last number read in the same query
    as the membership; since a room's numbers commit in order, everything up to it is visible.
    """
    membership = membership_get(room_id=room_id, user=user)
    upper = membership.room.last_sequence
    if until_sequence is not None:
        upper = min(upper, until_sequence)
    if upper <= after_sequence:  # nothing after the cursor (a client that is up to date): no read
        return [], False, after_sequence
    return room_changes(
        room_id=membership.room.pk, after_sequence=after_sequence, until_sequence=upper, limit=_clamp_limit(limit)
    )


def room_changes(
    *, room_id: object, after_sequence: int, until_sequence: int, limit: int
) -> tuple[list[Message], bool, int]:
    """`changes_page` without the access check, up to a number the caller knows is committed:
    for callers that checked access already (the page above; a process catching its sockets up)."""
    rows = list(
        Message.objects.filter(
            room_id=room_id, changed_sequence__gt=after_sequence, changed_sequence__lte=until_sequence
        )
        .select_related("sender")
        .order_by("changed_sequence")[: limit + 1]
    )
    # Archived days are frozen: they matter only to a cursor older than their latest change.
    keys = [
        key
        for key, span in archive.archived_spans(room_id)
        if span["max_changed"] > after_sequence
        and (len(rows) <= limit or span["min_changed"] < rows[-1].changed_sequence)
    ]
    if keys:
        cold = [
            m for m in archive.archived_messages(room_id, keys) if after_sequence < m.changed_sequence <= until_sequence
        ]
        rows = sorted(rows + _with_senders(cold), key=lambda m: m.changed_sequence)[: limit + 1]
    has_more = len(rows) > limit
    rows = rows[:limit]
    cursor = rows[-1].changed_sequence if has_more else max(until_sequence, after_sequence)
    return rows, has_more, cursor


def message_in_room(room_id: uuid.UUID, message_id: object) -> Message:
    try:
        message_uuid = uuid.UUID(str(message_id))
    except ValueError:
        raise NotFound("No such message.") from None
    message = Message.objects.select_related("sender").filter(room_id=room_id, id=message_uuid).first()
    if message is None:
        raise missing_message(room_id, message_uuid)
    return message


def missing_message(room_id: uuid.UUID, message_id: uuid.UUID) -> ApplicationError:
    """Why a message of the room is not in PostgreSQL: in an archived day (`archived`, read-only),
    or none (`not_found`)."""
    return Archived() if archive.find_archived(room_id, message_id) else NotFound("No such message.")


def _readable_message(room_id: uuid.UUID, message_id: object) -> Message:
    """A message of the room, in PostgreSQL or in an archived day (reads reach into archives)."""
    try:
        return message_in_room(room_id, message_id)
    except Archived:
        wanted = str(message_id)
        keys = [key for key, _span in archive.archived_spans(room_id)]
        found = next((m for m in archive.archived_messages(room_id, keys) if str(m.id) == wanted), None)
        if found is None:
            raise NotFound("No such message.") from None
        return _with_senders([found])[0]


def thread_page(
    *,
    user: User,
    room_id: object,
    message_id: object,
    after_sequence: int | None = None,
    before_sequence: int | None = None,
    limit: int | None = None,
) -> tuple[Message, list[Message], bool]:
    """A thread: its root message, a page of its replies and whether more exist in that direction.
    The paging is the room history's (`messages_page`): `after_sequence` oldest first,
    `before_sequence` newest first, neither the newest replies, newest first. `message_id` may
    name the root or any reply of it. Pages reach into archived days."""
    membership = membership_get(room_id=room_id, user=user)
    room_pk = membership.room.pk
    root = _readable_message(room_pk, message_id)
    if root.reply_to is not None:
        root = _readable_message(room_pk, root.reply_to)
    limit = _clamp_limit(limit)
    forward = after_sequence is not None
    replies = Message.objects.filter(room_id=room_pk, reply_to=root.id).select_related("sender")
    if forward:
        replies = replies.filter(sequence__gt=after_sequence).order_by("sequence")
    else:
        if before_sequence is not None:
            replies = replies.filter(sequence__lt=before_sequence)
        replies = replies.order_by("-sequence")
    rows = list(replies[: limit + 1])
    low = max(root.sequence, after_sequence or 0)
    keys = [
        key
        for key, span in archive.archived_spans(room_pk)
        if span["last"] > low and (before_sequence is None or span["first"] < before_sequence)
    ]
    if keys:
        wanted = str(root.id)
        cold = [
            m
            for m in archive.archived_messages(room_pk, keys)
            if m.reply_to is not None
            and str(m.reply_to) == wanted
            and (not forward or m.sequence > after_sequence)  # type: ignore[operator]
            and (forward or before_sequence is None or m.sequence < before_sequence)
        ]
        rows = sorted(rows + _with_senders(cold), key=lambda m: m.sequence, reverse=not forward)[: limit + 1]
    return root, rows[:limit], len(rows) > limit


def message_get(*, user: User, room_id: object, message_id: object) -> tuple[Membership, Message]:
    membership = membership_get(room_id=room_id, user=user)
    return membership, message_in_room(membership.room.pk, message_id)


def message_receipts(*, user: User, room_id: object, message_id: object) -> dict:
    """Who has received and who has read one of the user's own messages."""
    membership, message = message_get(user=user, room_id=room_id, message_id=message_id)
    if message.sender_id != user.pk:
        raise Forbidden("Only the sender can see who received and read a message.")
    others = (
        Membership.objects.filter(room=membership.room, delivered_sequence__gte=message.sequence)
        .exclude(user=user)
        .select_related("user")
        .order_by("user__username")
    )
    delivered, read = [], []
    for other in others:
        person = user_payload(other.user)
        delivered.append(person)
        if other.read_sequence >= message.sequence and other.user.send_read_receipts:
            read.append(person)
    return {"message": str(message.id), "sequence": message.sequence, "delivered_to": delivered, "read_by": read}


def message_revisions(*, user: User, room_id: object, message_id: object) -> list[MessageRevision]:
    """Earlier texts of a message, oldest first: for room owners/admins and the author."""
    membership, message = message_get(user=user, room_id=room_id, message_id=message_id)
    if not access.may_manage(membership) and message.sender_id != user.pk:
        raise Forbidden("Only room admins and the author can see edit history.")
    return list(MessageRevision.objects.filter(room_id=membership.room.pk, message_id=message.id))


UNREAD_CAP = 999


_SESSION_STATE = f"""
SELECT m.user_id, m.room_id, r.last_sequence, (
    SELECT count(*) FROM (
        SELECT 1 FROM messaging_message msg
         WHERE msg.room_id = m.room_id AND msg.sequence > m.read_sequence
           AND msg.deleted_at IS NULL AND msg.sender_id IS DISTINCT FROM m.user_id
         LIMIT {UNREAD_CAP:d}
    ) capped
) AS unread
  FROM rooms_membership m JOIN rooms_room r ON r.id = m.room_id
 WHERE m.user_id = ANY(%s)
"""
_session_states = per_loop(lambda: asyncdb.Lookups(_SESSION_STATE, "user_id"))


async def asession_state(*, user_id: int) -> tuple[dict[str, int], dict[str, int]]:
    """What a new socket starts from: ({room id: last sequence}, {room id: unread count}) for every
    room of the user (rooms.selectors.user_rooms_state and `unread_counts` below, in one statement,
    so one snapshot), on the loop's own connection (core.asyncdb: no thread hop per socket), one
    statement for the sockets that connect together (asyncdb.Lookups)."""
    rows = await _session_states().get(user_id)
    rooms = {str(row["room_id"]): row["last_sequence"] for row in rows}
    return rooms, {str(row["room_id"]): row["unread"] for row in rows}


_ROOMS_LAST = """
SELECT m.user_id, m.room_id, r.last_sequence
  FROM rooms_membership m JOIN rooms_room r ON r.id = m.room_id
 WHERE m.user_id = ANY(%s)
"""
_rooms_lasts = per_loop(lambda: asyncdb.Lookups(_ROOMS_LAST, "user_id"))


async def arooms_last_sequence(*, user_id: int) -> dict[str, int]:
    """{room id: last sequence} of the user's rooms, read now (one statement for the sockets that
    ask together: asyncdb.Lookups)."""
    return {str(row["room_id"]): row["last_sequence"] for row in await _rooms_lasts().get(user_id)}


def unread_counts(*, user_id: int) -> dict[str, int]:
    """{room id: messages from others after my read mark, not deleted}, capped at UNREAD_CAP."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT m.room_id, (
                SELECT count(*) FROM (
                    SELECT 1 FROM messaging_message msg
                     WHERE msg.room_id = m.room_id AND msg.sequence > m.read_sequence
                       AND msg.deleted_at IS NULL AND msg.sender_id IS DISTINCT FROM m.user_id
                     LIMIT %s
                ) capped
            )
              FROM rooms_membership m
             WHERE m.user_id = %s
            """,
            [UNREAD_CAP, user_id],
        )
        return {str(room_id): count for room_id, count in cursor.fetchall()}
