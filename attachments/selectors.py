"""Reading attachments: who may fetch one, and the short-lived URL to fetch it from."""

import uuid
from urllib.parse import quote

from django.conf import settings

from accounts.models import User
from attachments import images
from attachments.models import Attachment
from attachments.sniff import IMAGE_TYPES
from attachments.storage import attachment_store
from core.errors import NotFound
from rooms import access
from rooms.selectors import room_get_visible


def attachment_get(*, user: User, room_id: object, attachment_id: object) -> Attachment:
    """An attachment this user may fetch: one sent in a room they are a member of (with a message
    that is not deleted), or their own upload not sent yet. Anything else, to anyone else
    (outsiders, non-members of a public room), is not found."""
    room, membership = room_get_visible(room_id=room_id, user=user)
    refusal = access.attachment_refusal(
        kind=room.kind,
        role=membership.role if membership is not None else None,
        user_active=membership.user.is_active if membership is not None else user.is_active,
    )
    if refusal is not None:
        raise refusal
    try:
        attachment_uuid = uuid.UUID(str(attachment_id))
    except ValueError:
        raise NotFound("No such attachment.") from None
    attachment = Attachment.objects.filter(id=attachment_uuid, room=room, status=Attachment.Status.READY).first()
    if attachment is None or (attachment.message_id is None and attachment.uploader_id != user.pk):
        raise NotFound("No such attachment.")
    return attachment


def download_url(attachment: Attachment, *, variant: str = "original") -> str:
    """A presigned URL of the file (or its thumbnail) valid ATTACHMENT_URL_SECONDS. Images that
    browsers show safely open inline; everything else downloads, under its own name."""
    if variant == "thumbnail":
        if attachment.thumbnail != Attachment.Thumbnail.READY:
            raise NotFound("This attachment has no thumbnail.", code="no_thumbnail")
        return attachment_store().download_url(
            attachment.key("thumbnail"),
            content_type=images.THUMBNAIL_TYPE,
            disposition="inline",
            expires=settings.ATTACHMENT_URL_SECONDS,
        )
    inline = attachment.content_type in IMAGE_TYPES
    disposition = f"{'inline' if inline else 'attachment'}; filename*=UTF-8''{quote(attachment.name, safe='')}"
    return attachment_store().download_url(
        attachment.key(),
        content_type=attachment.content_type,
        disposition=disposition,
        expires=settings.ATTACHMENT_URL_SECONDS,
    )
