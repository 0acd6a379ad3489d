import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from rooms.models import Room


class Attachment(models.Model):
    """A file uploaded straight to the store (docs/attachments.md) for one room, by one member.

    Its life: `pending` (a presigned upload was handed out) -> `ready` (the upload was completed:
    its size and sniffed type checked by the server) or `failed` -> attached to one message
    (`message_id`, once, by messaging.services) -> `deleted` with its message (the store's objects
    are removed by a task). Images also get a thumbnail, made by a Celery task.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        READY = "ready"
        FAILED = "failed"
        DELETED = "deleted"

    class Kind(models.TextChoices):  # how the payload presents it (attachments.payloads)
        IMAGE = "image"
        FILE = "file"

    class Thumbnail(models.TextChoices):
        NONE = "none"  # not an image
        PENDING = "pending"
        READY = "ready"
        FAILED = "failed"  # a corrupt or over-large image: shown as a file

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    uploader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=255)
    declared_type = models.CharField(max_length=127)
    declared_size = models.BigIntegerField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    # What the server found at completion: the stored size and the type sniffed from the bytes.
    size = models.BigIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=127, blank=True)
    width = models.IntegerField(null=True, blank=True)
    height = models.IntegerField(null=True, blank=True)
    thumbnail = models.CharField(max_length=8, choices=Thumbnail.choices, default=Thumbnail.NONE)
    error = models.CharField(max_length=255, blank=True)
    # The message it was sent with (messages live in a partitioned table: no foreign key).
    message_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["message_id"], name="attachment_message", condition=models.Q(message_id__isnull=False)
            ),
            models.Index(fields=["uploader", "status"], name="attachment_uploader_status"),
            models.Index(fields=["status", "created_at"], name="attachment_status_created"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def is_image(self) -> bool:
        return self.thumbnail != self.Thumbnail.NONE

    def key(self, variant: str = "original") -> str:
        """Where its bytes live in the store: one folder per attachment, under its room's."""
        return f"{settings.ATTACHMENT_PREFIX}/{self.room_id}/{self.id}/{variant}"
