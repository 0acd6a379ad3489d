"""Every write to messages goes through here: REST views and the WebSocket consumer alike."""

import datetime as dt
import uuid

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from core.errors import ApplicationError, Conflict, Forbidden, InvalidInput
from core.events import dumps, room_group, send_event, user_group
from messaging.archive import hot_cutoff
from messaging.models import Message, MessageRevision, SentMessageKey
from messaging.partitions import partition_ensure_for
from messaging.payloads import change_frame
from messaging.selectors import Archived, message_in_room
from rooms.models import Membership
from rooms.selectors import membership_get


def _clean_content(content: object) -> str:
    if not isinstance(content, str) or not content.strip():
        raise InvalidInput("A message needs some text.", fields={"content": ["This field may not be blank."]})
    if len(content) > settings.MESSAGE_MAX_LENGTH:
        raise ApplicationError(
            f"Messages are at most {settings.MESSAGE_MAX_LENGTH} characters.", code="too_large", status=400
        )
    return content


def _clean_client_msg_id(client_msg_id: object) -> uuid.UUID:
    if client_msg_id is None or client_msg_id == "":
        raise InvalidInput("client_msg_id is required.", fields={"client_msg_id": ["This field is required."]})
    try:
        return uuid.UUID(str(client_msg_id))
    except ValueError:
        raise InvalidInput("client_msg_id must be a UUID.", fields={"client_msg_id": ["Must be a UUID."]}) from None


class _AlreadySent(Exception):
    """Raised inside the send transaction to roll it back (returning the sequence number)."""


def _claim_key(*, sender_id: int, client_msg_id: uuid.UUID, room_id: uuid.UUID, message: Message) -> bool:
    """Insert the idempotency row; False if this sender already used this client_msg_id.

    A concurrent send with the same key blocks here until the first one commits or rolls back,
    so exactly one of them inserts and the other finds the committed row.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {SentMessageKey._meta.db_table}
                (sender_id, client_msg_id, room_id, message_id, message_created_at)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (sender_id, client_msg_id) DO NOTHING
            RETURNING id
            """,
            [sender_id, client_msg_id, room_id, message.id, message.created_at],
        )
        return cursor.fetchone() is not None


def _next_sequence(room_id: uuid.UUID) -> int:
    # The row lock taken here serialises senders in one room until commit, which is what makes
    # sequences gapless (a rollback returns the number) and commit order equal sequence order.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE rooms_room SET last_sequence = last_sequence + 1 WHERE id = %s RETURNING last_sequence",
            [room_id],
        )
        return cursor.fetchone()[0]


def _announce_change(message: Message) -> None:
    """Publish a numbered room change after commit; consumers deliver these in number order."""
    send_event(
        [room_group(message.room_id)],
        {
            "type": "room.sequenced",
            "room": str(message.room_id),
            "seq": message.changed_sequence,
            "text": dumps(change_frame(message)),
        },
    )


class _Unchanged(Exception):
    """Raised inside a change transaction that turns out to change nothing: rolls back its number."""

    def __init__(self, message: Message) -> None:
        self.message = message


def _replay(*, sender: User, client_msg_id: uuid.UUID, room_id: uuid.UUID) -> Message:
    key = SentMessageKey.objects.get(sender=sender, client_msg_id=client_msg_id)
    if key.room_id != room_id:
        raise Conflict("This client_msg_id was already used in another room.", code="client_msg_id_reused")
    return Message.objects.select_related("sender").get(id=key.message_id, created_at=key.message_created_at)


def message_send(*, user: User, room_id: object, content: object, client_msg_id: object) -> tuple[Message, bool]:
    """Persist a message and announce it to the room after commit.

    Returns (message, created). Resending the same client_msg_id returns the original message
    with created=False and announces nothing.
    """
    content = _clean_content(content)
    key = _clean_client_msg_id(client_msg_id)
    partition_ensure_for(timezone.now())
    try:
        with transaction.atomic():
            membership = membership_get(room_id=room_id, user=user)
            room = membership.room
            if not membership.can_send:
                raise Forbidden("Viewers can read this room but not send to it.")
            sequence = _next_sequence(room.pk)
            # Stamped under the room lock, so created_at never goes backwards along the sequence
            # (a room's days in the partitions then hold contiguous sequence ranges).
            message = Message(
                id=uuid.uuid4(),
                room_id=room.pk,
                sequence=sequence,
                sender=user,
                content=content,
                client_msg_id=key,
                created_at=timezone.now(),
                changed_sequence=sequence,
            )
            message.save(force_insert=True)
            if not _claim_key(sender_id=user.pk, client_msg_id=key, room_id=room.pk, message=message):
                raise _AlreadySent
            _announce_change(message)
    except _AlreadySent:
        return _replay(sender=user, client_msg_id=key, room_id=room.pk), False
    return message, True


def _require_hot(message: Message) -> None:
    # Days outside the hot window are frozen so that their archive always matches them.
    if message.created_at.astimezone(dt.UTC).date() < hot_cutoff():
        raise Archived()


def message_edit(*, user: User, room_id: object, message_id: object, content: object) -> Message:
    """Replace a message's text (author only, while they may send). Keeps the old text as a revision."""
    content = _clean_content(content)
    try:
        with transaction.atomic():
            membership = membership_get(room_id=room_id, user=user)
            if not membership.can_send:
                raise Forbidden("Viewers cannot edit messages.")
            room_id = membership.room.pk
            # Taking the number locks the room: every change in this room is serialised from here.
            number = _next_sequence(room_id)
            message = message_in_room(room_id, message_id)
            _require_hot(message)
            if message.sender_id != user.pk:
                raise Forbidden("Only the author can edit a message.")
            if message.deleted_at is not None:
                raise Conflict("This message was deleted.", code="deleted")
            if message.content == content:
                raise _Unchanged(message)
            now = timezone.now()
            MessageRevision.objects.create(
                message_id=message.id,
                room_id=room_id,
                content=message.content,
                written_at=message.edited_at or message.created_at,
                replaced_at=now,
            )
            Message.objects.filter(room_id=room_id, id=message.id, created_at=message.created_at).update(
                content=content, edited_at=now, changed_sequence=number
            )
            message.content, message.edited_at, message.changed_sequence = content, now, number
            _announce_change(message)
    except _Unchanged as unchanged:
        return unchanged.message
    return message


def message_delete(*, user: User, room_id: object, message_id: object) -> Message:
    """Delete a message for everyone (its author, or a room owner/admin): a tombstone stays in the
    history so sync and paging have no holes; the text and all revisions are gone."""
    try:
        with transaction.atomic():
            membership = membership_get(room_id=room_id, user=user)
            room_id = membership.room.pk
            number = _next_sequence(room_id)
            message = message_in_room(room_id, message_id)
            _require_hot(message)
            if message.sender_id != user.pk and not membership.can_manage:
                raise Forbidden("Only the author or a room admin can delete a message.")
            if message.deleted_at is not None:
                raise _Unchanged(message)
            now = timezone.now()
            Message.objects.filter(room_id=room_id, id=message.id, created_at=message.created_at).update(
                content="", deleted_at=now, changed_sequence=number
            )
            MessageRevision.objects.filter(room_id=room_id, message_id=message.id).delete()
            message.content, message.deleted_at, message.changed_sequence = "", now, number
            _announce_change(message)
    except _Unchanged as unchanged:
        return unchanged.message
    return message


def _clean_mark(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{name} must be a non-negative integer.", fields={name: ["Must be an integer >= 0."]})
    return value


def receipt_update(
    *, user: User, room_id: object, delivered_sequence: object = None, read_sequence: object = None
) -> Membership:
    """Move this member's delivered/read marks forward (never back; never past the room's end).
    Announces the new marks to the room (read hidden if the user turned read receipts off) and,
    unfiltered, to the user's own other devices."""
    delivered = _clean_mark(delivered_sequence, "delivered_sequence")
    read = _clean_mark(read_sequence, "read_sequence")
    if delivered is None and read is None:
        raise InvalidInput("Send delivered_sequence, read_sequence or both.", code="invalid_frame")
    with transaction.atomic():
        membership = membership_get(room_id=room_id, user=user)
        last = membership.room.last_sequence
        read = min(read or 0, last)
        delivered = max(min(delivered or 0, last), read)  # what you have read, you have received
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE rooms_membership AS m
                   SET delivered_sequence = GREATEST(m.delivered_sequence, %s),
                       read_sequence = GREATEST(m.read_sequence, %s)
                  FROM rooms_membership AS old
                 WHERE m.id = %s AND old.id = m.id
             RETURNING m.delivered_sequence, m.read_sequence, old.delivered_sequence, old.read_sequence
                """,
                [delivered, read, membership.pk],
            )
            new_delivered, new_read, old_delivered, old_read = cursor.fetchone()
        membership.delivered_sequence, membership.read_sequence = new_delivered, new_read
        if (new_delivered, new_read) == (old_delivered, old_read):
            return membership
        room = str(membership.room.pk)
        mine = {
            "type": "receipt",
            "room": room,
            "user": {"id": user.pk, "username": user.username},
            "delivered_sequence": new_delivered,
            "read_sequence": new_read,
        }
        theirs = dict(mine, read_sequence=new_read if user.send_read_receipts else None)
        send_event([user_group(user.pk)], {"type": "user.relay", "text": dumps(mine)})
        if new_delivered != old_delivered or (user.send_read_receipts and new_read != old_read):
            send_event(
                [room_group(room)], {"type": "room.relay", "room": room, "exclude_user": user.pk, "text": dumps(theirs)}
            )
    return membership
