"""Every write to messages goes through here: REST views and the WebSocket consumer alike."""

import uuid

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from core.errors import ApplicationError, Conflict, Forbidden, InvalidInput
from core.events import dumps, room_group, send_event
from messaging.models import Message, SentMessageKey
from messaging.partitions import partition_ensure_for
from messaging.payloads import message_payload
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
            )
            message.save(force_insert=True)
            if not _claim_key(sender_id=user.pk, client_msg_id=key, room_id=room.pk, message=message):
                raise _AlreadySent
            payload = message_payload(message)
            send_event(
                [room_group(room.pk)],
                {
                    "type": "room.sequenced",
                    "room": str(room.pk),
                    "seq": sequence,
                    "text": dumps({"type": "message.new", "room": str(room.pk), "message": payload}),
                },
            )
    except _AlreadySent:
        return _replay(sender=user, client_msg_id=key, room_id=room.pk), False
    return message, True
