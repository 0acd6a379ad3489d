"""The JSON shapes of attachments (declared once as TypedDicts, like messaging.payloads)."""

from typing import Annotated, TypedDict

from attachments.models import Attachment
from rooms.payloads import UUIDStr


class AttachmentPayload(TypedDict):
    """An attachment as a message carries it (and as its upload answers it)."""

    id: UUIDStr
    name: Annotated[str, "The file's name as the uploader gave it"]
    size: Annotated[int, "Bytes, as stored"]
    content_type: Annotated[str, "The type the server found in the file's bytes (never only the declared one)"]
    kind: Annotated[str, Attachment.Kind, "Images get a thumbnail and are shown inline"]
    width: Annotated[int | None, "Pixels, for images"]
    height: Annotated[int | None, "Pixels, for images"]
    thumbnail: Annotated[
        str,
        Attachment.Thumbnail,
        "`pending` until the thumbnail is made, then `ready` (or `failed`: show it as a file); `none` for files",
    ]


class UploadPayload(TypedDict):
    url: Annotated[str, "POST a multipart form here: every field of `fields`, then the file as `file`"]
    fields: dict[str, str]
    max_bytes: Annotated[int, "The store refuses a larger body"]
    expires_in: Annotated[int, "Seconds the form stays valid"]


class AttachmentStart(TypedDict):
    attachment: AttachmentPayload
    upload: UploadPayload


class AttachmentLinks(AttachmentPayload):
    status: Annotated[str, Attachment.Status]
    message: Annotated[UUIDStr | None, "The message it was sent with; null until it is sent"]
    url: Annotated[str, "A presigned download URL (short-lived: `expires_in`)"]
    thumbnail_url: Annotated[str | None, "A presigned URL of the thumbnail (a WebP image) once it is ready"]
    expires_in: int


def attachment_payload(attachment: Attachment) -> AttachmentPayload:
    return {
        "id": str(attachment.id),
        "name": attachment.name,
        "size": attachment.size if attachment.size is not None else attachment.declared_size,
        "content_type": attachment.content_type or attachment.declared_type,
        "kind": "image" if attachment.is_image else "file",
        "width": attachment.width,
        "height": attachment.height,
        "thumbnail": attachment.thumbnail,
    }
