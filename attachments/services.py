"""Every write to attachments goes through here: the REST views, the tasks and the admin alike.

An upload (docs/attachments.md): `attachment_start` checks the request and hands out a presigned
form for the store; the client uploads straight there; `attachment_complete` reads what arrived
(its size, its first bytes) and accepts it only if it is what it claimed to be. Sending it with a
message is messaging.services' (attachments.binding); thumbnails are made by a task
(`thumbnail_make`), and a thumbnail made after the message was sent is a numbered change of it.
"""

import datetime as dt
import logging
import os
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from attachments import images, sniff
from attachments.models import Attachment
from attachments.payloads import attachment_payload
from attachments.storage import UploadForm, attachment_store
from core.errors import ApplicationError, Conflict, InvalidInput, NotFound, Unavailable
from core.jsontext import storable_text
from rooms import access
from rooms.models import Room
from rooms.selectors import membership_get
from workspaces import limits

logger = logging.getLogger(__name__)

# How much of an image completion reads to learn its size (a JPEG's EXIF block comes first and is
# rarely larger); a header that needs more is read whole.
IMAGE_HEAD_BYTES = 256 * 1024


class TooLarge(ApplicationError):
    code = "too_large"
    status = 400


def _clean_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("An attachment needs a file name.", fields={"name": ["This field may not be blank."]})
    # A name, never a path: whatever a client sends, only its last component is kept.
    name = os.path.basename(name.replace("\\", "/")).strip()
    if not name or name in (".", ".."):
        raise InvalidInput("That is not a file name.", fields={"name": ["Not a file name."]})
    if len(name) > 255:
        raise InvalidInput("File names are at most 255 characters.", fields={"name": ["At most 255 characters."]})
    return storable_text(name, field="name")


def _clean_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InvalidInput("size must be the file's size in bytes.", fields={"size": ["A positive integer."]})
    if size > settings.ATTACHMENT_MAX_BYTES:
        raise TooLarge(f"Attachments are at most {settings.ATTACHMENT_MAX_BYTES} bytes.")
    return size


def _clean_type(content_type: object) -> str:
    if content_type is None:
        return ""
    if not isinstance(content_type, str):
        raise InvalidInput("content_type must be a string.", fields={"content_type": ["A MIME type."]})
    content_type = content_type.split(";")[0].strip().lower()
    if content_type not in sniff.DECLARABLE:
        raise ApplicationError(
            f"Files of type {content_type[:100]!r} cannot be attached.", code="unsupported_type", status=400
        )
    return content_type


def attachment_start(
    *, user: User, room_id: object, name: object, size: object, content_type: object
) -> tuple[Attachment, UploadForm]:
    """Begin an upload to a room one may send to: the attachment (pending) and the presigned form
    to upload its bytes with (at most `size` bytes, valid ATTACHMENT_URL_SECONDS)."""
    name = _clean_name(name)
    size = _clean_size(size)
    declared = _clean_type(content_type)
    membership = membership_get(room_id=room_id, user=user)
    access.require_send(membership)
    pending = Attachment.objects.filter(uploader=user, status=Attachment.Status.PENDING).count()
    if pending >= settings.ATTACHMENT_MAX_PENDING:
        raise Conflict(
            f"You have {pending} uploads that were never completed; complete or abandon them first.",
            code="too_many_uploads",
        )
    with transaction.atomic():  # the workspace's storage limit counts this upload's declared size
        limits.require_storage(workspace_id=membership.room.workspace_id, adding=size)
        attachment = Attachment.objects.create(
            room=membership.room, uploader=user, name=name, declared_type=declared, declared_size=size
        )
    try:
        form = attachment_store().upload_form(
            attachment.key(),
            content_type=declared or sniff.UNKNOWN,
            max_bytes=size,
            expires=settings.ATTACHMENT_URL_SECONDS,
        )
    except Exception as error:
        logger.warning("could not sign an upload: %r", error)
        raise Unavailable() from error
    return attachment, form


def _own_upload(*, user: User, room_id: object, attachment_id: object) -> Attachment:
    """The user's own upload to this room (which they may still see): anyone else's is not found."""
    membership = membership_get(room_id=room_id, user=user)
    try:
        attachment_uuid = uuid.UUID(str(attachment_id))
    except ValueError:
        raise NotFound("No such attachment.") from None
    attachment = Attachment.objects.filter(id=attachment_uuid, room=membership.room, uploader=user).first()
    if attachment is None or attachment.status == Attachment.Status.DELETED:
        raise NotFound("No such attachment.")
    return attachment


def attachment_complete(*, user: User, room_id: object, attachment_id: object) -> Attachment:
    """The client says its upload is done: check what the store holds (size, real type, for images
    their dimensions) and make the attachment ready to send, or refuse it for good (`failed`, its
    object deleted) with the reason's code. Completing a ready attachment again returns it."""
    attachment = _own_upload(user=user, room_id=room_id, attachment_id=attachment_id)
    if attachment.status == Attachment.Status.READY:
        return attachment
    if attachment.status == Attachment.Status.FAILED:
        raise Conflict(f"This upload was refused ({attachment.error}); upload the file again.", code="upload_failed")
    store = attachment_store()
    key = attachment.key()
    try:
        size = store.size(key)
    except Exception as error:
        logger.warning("could not read an upload's size: %r", error)
        raise Unavailable() from error
    if size is None:  # not uploaded (yet): the client may upload and complete again
        raise Conflict("Nothing was uploaded for this attachment yet.", code="upload_missing")
    try:
        found = _inspect(attachment, size)
    except ApplicationError as refusal:
        Attachment.objects.filter(pk=attachment.pk, status=Attachment.Status.PENDING).update(
            status=Attachment.Status.FAILED, error=refusal.code, size=size, completed_at=timezone.now()
        )
        _delete_quietly(key)
        raise
    content_type, width, height = found
    is_image = content_type in sniff.IMAGE_TYPES
    with transaction.atomic():
        updated = Attachment.objects.filter(pk=attachment.pk, status=Attachment.Status.PENDING).update(
            status=Attachment.Status.READY,
            size=size,
            content_type=content_type,
            width=width,
            height=height,
            thumbnail=Attachment.Thumbnail.PENDING if is_image else Attachment.Thumbnail.NONE,
            completed_at=timezone.now(),
        )
        if updated and is_image:
            transaction.on_commit(lambda: _enqueue_thumbnail(attachment.pk))
    attachment.refresh_from_db()
    if attachment.status != Attachment.Status.READY:  # refused by a concurrent completion
        raise Conflict(f"This upload was refused ({attachment.error}); upload the file again.", code="upload_failed")
    return attachment


def _inspect(attachment: Attachment, size: int) -> tuple[str, int | None, int | None]:
    """(stored type, width, height) of an uploaded object, or the refusal."""
    if size > min(attachment.declared_size, settings.ATTACHMENT_MAX_BYTES):
        raise TooLarge("The uploaded file is larger than announced.")
    store = attachment_store()
    try:
        head = store.read_start(attachment.key(), max(sniff.SNIFF_BYTES, IMAGE_HEAD_BYTES))
    except Exception as error:
        logger.warning("could not read an upload: %r", error)
        raise Unavailable() from error
    sniffed = sniff.sniff(head[: sniff.SNIFF_BYTES])
    content_type = sniff.stored_type(declared=attachment.declared_type, sniffed=sniffed)
    if sniffed not in sniff.ACCEPTED:
        raise ApplicationError("Files of this kind cannot be attached.", code="unsupported_type", status=400)
    if content_type is None:
        raise ApplicationError(
            f"The file is not what it claims to be: its bytes say {sniffed}, not {attachment.declared_type}.",
            code="type_mismatch",
            status=400,
        )
    if content_type not in sniff.IMAGE_TYPES:
        return content_type, None, None
    try:
        try:
            width, height = images.dimensions(
                head, content_type=content_type, max_pixels=settings.ATTACHMENT_MAX_PIXELS
            )
        except images.ImageRefused as refused:
            if refused.code != "corrupt_image" or len(head) >= size:
                raise
            data = store.read(attachment.key())  # a header longer than IMAGE_HEAD_BYTES
            width, height = images.dimensions(
                data, content_type=content_type, max_pixels=settings.ATTACHMENT_MAX_PIXELS
            )
    except images.ImageRefused as refused:
        messages = {
            "image_too_large": f"Images are at most {settings.ATTACHMENT_MAX_PIXELS:,} pixels.",
            "corrupt_image": "This image cannot be read.",
        }
        raise ApplicationError(messages[refused.code], code=refused.code, status=400) from refused
    return content_type, width, height


def _delete_quietly(key: str) -> None:
    try:
        attachment_store().delete(key)
    except Exception:  # the hourly prune retries it
        logger.warning("could not delete %s", key, exc_info=True)


def _enqueue_thumbnail(attachment_id: uuid.UUID) -> None:
    from attachments.tasks import make_thumbnail

    try:
        make_thumbnail.delay(str(attachment_id))
    except Exception:  # the broker is away: the image is shown as a file until someone retries
        logger.exception("could not queue the thumbnail of %s", attachment_id)


def thumbnail_make(*, attachment_id: uuid.UUID | str) -> str:
    """Make an image's thumbnail (the task's work): `ready`, or `failed` for an image Pillow cannot
    decode (corrupt, truncated, too many pixels). If the attachment was sent already, its message
    changes (a numbered `message.update`). What it became; "gone" when there is nothing to do."""
    attachment = Attachment.objects.filter(pk=attachment_id).first()
    if attachment is None or attachment.thumbnail != Attachment.Thumbnail.PENDING:
        return "gone"
    if attachment.status != Attachment.Status.READY:  # deleted with its message meanwhile
        return "gone"
    store = attachment_store()
    state = Attachment.Thumbnail.READY
    if store.size(attachment.key()) is None:  # removed from the store behind our back
        _thumbnail_done(attachment, Attachment.Thumbnail.FAILED)
        return Attachment.Thumbnail.FAILED
    try:
        data = store.read(attachment.key())
        thumb = images.thumbnail(data, content_type=attachment.content_type, max_pixels=settings.ATTACHMENT_MAX_PIXELS)
        store.put(attachment.key("thumbnail"), thumb, images.THUMBNAIL_TYPE)
    except images.ImageRefused as refused:
        logger.info("no thumbnail for attachment %s: %s", attachment.pk, refused)
        state = Attachment.Thumbnail.FAILED
    _thumbnail_done(attachment, state)
    return state


def _thumbnail_done(attachment: Attachment, state: str) -> None:
    from messaging.services import message_attachment_changed  # messaging.services imports this app

    with transaction.atomic():
        # Room, then attachment: the order a send takes them in (attachments.binding).
        Room.objects.select_for_update().filter(pk=attachment.room_id).values_list("pk").first()
        current = Attachment.objects.select_for_update().filter(pk=attachment.pk).first()
        if current is None or current.thumbnail != Attachment.Thumbnail.PENDING:
            return
        current.thumbnail = state
        current.save(update_fields=["thumbnail"])
        if current.message_id is not None and current.status == Attachment.Status.READY:
            message_attachment_changed(
                room_id=current.room_id, message_id=current.message_id, attachment=dict(attachment_payload(current))
            )


def attachment_abandon(*, user: User, room_id: object, attachment_id: object) -> None:
    """The uploader removes an upload they have not sent: it and its objects are gone."""
    attachment = _own_upload(user=user, room_id=room_id, attachment_id=attachment_id)
    if attachment.message_id is not None:
        raise Conflict("This attachment was sent; delete its message instead.", code="attachment_used")
    deleted, _ = Attachment.objects.filter(pk=attachment.pk, message_id__isnull=True).delete()
    if deleted:
        for variant in ("original", "thumbnail"):
            _delete_quietly(attachment.key(variant))


def uploads_prune(*, older_than_hours: int = 24) -> int:
    """Remove what no message will ever show: uploads never sent within `older_than_hours`, and
    deleted attachments whose objects may still be in the store (a lost deletion task). The
    number of attachments removed."""
    cutoff = timezone.now() - dt.timedelta(hours=older_than_hours)
    stale = Attachment.objects.filter(message_id__isnull=True, created_at__lt=cutoff) | Attachment.objects.filter(
        status=Attachment.Status.DELETED
    )
    removed = 0
    for attachment in stale.only("id", "room_id")[:1000]:
        for variant in ("original", "thumbnail"):
            attachment_store().delete(attachment.key(variant))
        removed += Attachment.objects.filter(pk=attachment.pk).delete()[0]
    return removed
