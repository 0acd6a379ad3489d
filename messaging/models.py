import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from psqlextra.models import PostgresPartitionedModel
from psqlextra.types import PostgresPartitioningMethod

from rooms.models import Room


class Message(PostgresPartitionedModel):
    """A chat message, stored in a table range-partitioned by day on `created_at`.

    PostgreSQL only allows unique constraints on a partitioned table when they include the
    partition key, so the primary key is really (id, created_at) and neither of our two
    uniqueness rules can be a constraint here:

    - `(room, sequence)` is unique by construction: sequences come from Room.last_sequence,
      incremented with UPDATE ... RETURNING in the same transaction as the insert, so the row
      lock hands out each number exactly once and a rollback gives it back (gapless).
    - `(sender, client_msg_id)` is enforced by SentMessageKey, an ordinary table with a real
      unique constraint that the insert goes through first (see messaging.services).
    """

    class PartitioningMeta:
        method = PostgresPartitioningMethod.RANGE
        key = ["created_at"]

    # The ignore: django-stubs' plugin gives psqlextra's abstract base Django's default int `id`.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)  # type: ignore[assignment]
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+", db_index=False)
    sequence = models.BigIntegerField()
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    content = models.TextField()
    client_msg_id = models.UUIDField()
    created_at = models.DateTimeField(default=timezone.now)
    # The room sequence number of this message's latest change: its creation, then each edit or
    # delete takes a new number from the same per-room sequence. Sync after N = rows with
    # changed_sequence > N, each in its latest state.
    changed_sequence = models.BigIntegerField()
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # @mentions (messaging/mentions.py): {"users": [{"id", "username"}, ...], "room": bool}, the
    # room's members the text names and whether it says @room (owners and admins only); null for
    # none. Set by the write that stores the text (a send, a reply, an edit).
    mentions = models.JSONField(null=True, blank=True)
    # Threads (docs/protocol.md "Threads and reactions"): a reply names its thread's root message
    # (replies to a reply join the root's thread: threads are one level deep). A root keeps its
    # number of replies that are not deleted and when the last one was sent; each reply takes a
    # number for itself and one for this change of its root, so sync carries both.
    reply_to = models.UUIDField(null=True, blank=True)
    reply_count = models.IntegerField(default=0, db_default=0)
    last_reply_at = models.DateTimeField(null=True, blank=True)
    # Reactions, aggregated: [{"emoji": "👍", "users": [{"id", "username"}, ...]}, ...] in the order
    # each emoji was first used, users in the order they reacted; null for none. Every change is a
    # numbered change of the message (messaging.services.reaction_set), like an edit.
    reactions = models.JSONField(null=True, blank=True)
    # What the latest numbered change was when it was neither the creation, an edit nor the delete:
    # "reaction", "thread" (a reply sent or deleted) or "attach" (an attachment's thumbnail); null
    # otherwise. Sync tells the change apart by it (`message.update`, messaging.payloads.change_type).
    change_kind = models.CharField(max_length=8, null=True, blank=True)
    # Attachments sent with the message (attachments/, docs/attachments.md): their metadata as the
    # payload shows it, [{"id", "name", "size", "content_type", "kind", "width", "height",
    # "thumbnail"}, ...] in the order sent; null for none (every message the batched path sends).
    # A thumbnail made later is a numbered change of the message (change_kind "attach").
    attachments = models.JSONField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["room", "sequence"], name="message_room_sequence"),
            models.Index(fields=["room", "changed_sequence"], name="message_room_changed"),
            # Edits and deletes name a message by id alone; the primary key starts with created_at.
            models.Index(fields=["id"], name="message_id"),
            # A thread's replies, in order (messaging.selectors.thread_page).
            models.Index(
                fields=["room", "reply_to", "sequence"],
                name="message_thread",
                condition=models.Q(reply_to__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} in {self.room_id}"


class MessageRevision(models.Model):
    """An earlier text of an edited message. Deleting the message deletes its revisions."""

    message_id = models.UUIDField(db_index=True)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    content = models.TextField()
    # When this text was written: the message's creation or the edit that introduced it.
    written_at = models.DateTimeField()
    replaced_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["replaced_at", "pk"]

    def __str__(self) -> str:
        return f"revision of {self.message_id} from {self.written_at:%Y-%m-%d %H:%M}"


class SentMessageKey(models.Model):
    """One row per (sender, client_msg_id): the idempotency record of a send.

    Lives outside the partitioned table so the uniqueness can be a real constraint. A resend
    with the same key finds this row and gets the original message back.
    """

    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    client_msg_id = models.UUIDField()
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    message_id = models.UUIDField()
    message_created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sender", "client_msg_id"], name="sentmessagekey_sender_client_msg_id")
        ]

    def __str__(self) -> str:
        return f"{self.sender_id}:{self.client_msg_id}"


class MessageArchive(models.Model):
    """One archived day of messages: where it went, what it held, and how far archiving got.

    The steps only move forward (pending -> uploaded -> verified -> dropped); a failure records
    `failed` with the error, and a re-run starts that day over. At every step either the day's
    partition is still in PostgreSQL or a verified object is in storage (see messaging.archive).
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        UPLOADED = "uploaded"
        VERIFIED = "verified"
        DROPPED = "dropped"
        FAILED = "failed"
        RESTORED = "restored"

    day = models.DateField(unique=True)
    partition = models.CharField(max_length=63)
    key = models.CharField(max_length=512, blank=True)
    manifest_key = models.CharField(max_length=512, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    rows = models.BigIntegerField(default=0)
    bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    # {room id: {"first": seq, "last": seq, "count": n, "min_changed": n, "max_changed": n}}
    room_ranges = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    dropped_at = models.DateTimeField(null=True, blank=True)
    restored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"{self.day} ({self.status})"


class MessagePartition(models.Model):
    """Read-only view of the message partitions (pg_inherits) with size and estimated rows."""

    name = models.CharField(max_length=63, primary_key=True)
    bounds = models.TextField()
    approx_rows = models.BigIntegerField()
    total_bytes = models.BigIntegerField()

    class Meta:
        managed = False
        db_table = "messaging_partition_stats"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
