"""Attachments meet messages: claimed by a send, released by a delete.

messaging.services calls these inside its own transaction, after it has locked the room (taking
its number): the lock order is always room, then attachment rows (attachments.services' thumbnail
update takes them in the same order), so the two never deadlock.
"""

import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from attachments.models import Attachment
from attachments.payloads import AttachmentPayload, attachment_payload
from core.errors import Conflict, InvalidInput, NotFound


def clean_ids(attachments: object) -> list[uuid.UUID]:
    """`attachments` of a send: a list of distinct attachment ids, at most MESSAGE_MAX_ATTACHMENTS."""
    if attachments is None:
        return []
    if not isinstance(attachments, list) or len(attachments) > settings.MESSAGE_MAX_ATTACHMENTS:
        raise InvalidInput(
            f"attachments must be a list of at most {settings.MESSAGE_MAX_ATTACHMENTS} attachment ids.",
            fields={"attachments": [f"A list of at most {settings.MESSAGE_MAX_ATTACHMENTS} ids."]},
        )
    ids: list[uuid.UUID] = []
    for value in attachments:
        try:
            parsed = uuid.UUID(value) if isinstance(value, str) else None
        except ValueError:
            parsed = None
        if parsed is None:
            raise InvalidInput("attachments must be attachment ids.", fields={"attachments": ["Must be UUIDs."]})
        if parsed in ids:
            raise InvalidInput("An attachment is listed twice.", fields={"attachments": ["Each id once."]})
        ids.append(parsed)
    return ids


def claim(*, user_id: int, room_id: uuid.UUID, ids: list[uuid.UUID], message_id: uuid.UUID) -> list[AttachmentPayload]:
    """Attach these uploads to a new message: each must be the sender's own, uploaded to this room,
    completed and not sent before. Their metadata, in the order given, for the message to carry."""
    rows = {a.id: a for a in Attachment.objects.select_for_update().filter(id__in=ids)}
    for attachment_id in ids:
        attachment = rows.get(attachment_id)
        # Another person's upload, or one for another room, is none of this sender's business.
        if attachment is None or attachment.uploader_id != user_id or attachment.room_id != room_id:
            raise NotFound("No such attachment.", code="attachment_not_found")
        if attachment.message_id is not None or attachment.status == Attachment.Status.DELETED:
            raise Conflict("This attachment was already sent with a message.", code="attachment_used")
        if attachment.status != Attachment.Status.READY:
            raise Conflict("This attachment's upload is not complete (or was refused).", code="attachment_not_ready")
    Attachment.objects.filter(id__in=ids).update(message_id=message_id)
    return [attachment_payload(rows[attachment_id]) for attachment_id in ids]


def release(*, room_id: uuid.UUID, message_id: uuid.UUID) -> None:
    """The message was deleted: so are its attachments, and their objects leave the store after
    commit (attachments.tasks.delete_objects)."""
    doomed = list(
        Attachment.objects.filter(room_id=room_id, message_id=message_id)
        .exclude(status=Attachment.Status.DELETED)
        .only("id", "room_id")
    )
    if not doomed:
        return
    Attachment.objects.filter(id__in=[a.id for a in doomed]).update(
        status=Attachment.Status.DELETED, deleted_at=timezone.now()
    )
    keys = [a.key(variant) for a in doomed for variant in ("original", "thumbnail")]
    transaction.on_commit(lambda: _enqueue_delete(keys))


def release_room(*, room_id: uuid.UUID) -> None:
    """The room is being deleted, and its attachment rows with it (a cascade): their objects
    leave the store after commit. Called before the rows go."""
    keys = [
        attachment.key(variant)
        for attachment in Attachment.objects.filter(room_id=room_id).only("id", "room_id")
        for variant in ("original", "thumbnail")
    ]
    if keys:
        transaction.on_commit(lambda: _enqueue_delete(keys))


def release_unsent(*, uploader_id: int) -> int:
    """An erased account's uploads that were never sent with a message (accounts.erasure): deleted,
    their objects removed after commit. Returns how many."""
    doomed = list(
        Attachment.objects.filter(uploader_id=uploader_id, message_id__isnull=True)
        .exclude(status=Attachment.Status.DELETED)
        .only("id", "room_id")
    )
    if not doomed:
        return 0
    Attachment.objects.filter(id__in=[a.id for a in doomed]).update(
        status=Attachment.Status.DELETED, deleted_at=timezone.now()
    )
    keys = [a.key(variant) for a in doomed for variant in ("original", "thumbnail")]
    transaction.on_commit(lambda: _enqueue_delete(keys))
    return len(doomed)


def _enqueue_delete(keys: list[str]) -> None:
    from attachments.tasks import delete_objects

    try:
        delete_objects.delay(keys)
    except Exception:  # the broker is away: the hourly prune finds the deleted rows' objects
        import logging

        logging.getLogger(__name__).exception("could not queue the deletion of %s objects", len(keys))
