"""Boards: collaborative whiteboards in a room. The document is a CRDT (Yjs v1 updates, applied on
the server with pycrdt: boards.crdt); PostgreSQL keeps its append-only, gaplessly numbered log of
updates and snapshots of the merged state (docs/protocol.md "Boards")."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from rooms.models import Room


class Board(models.Model):
    TITLE_MAX_LENGTH = 120

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="boards")
    title = models.CharField(max_length=TITLE_MAX_LENGTH)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    # The last number handed out in this board's log: taken with UPDATE ... SET last_sequence =
    # last_sequence + 1 RETURNING in the transaction that inserts the update (boards.services), so
    # the row lock hands out each number once and a rollback gives it back (gapless).
    last_sequence = models.BigIntegerField(default=0, editable=False)
    # Bytes of the encoded document after the last update (an upper bound between compactions:
    # boards.services adds each update's size and measures exactly near the limit).
    size = models.BigIntegerField(default=0, editable=False)

    class Meta:
        indexes = [models.Index(fields=["room", "created_at"], name="board_room_created")]
        constraints = [
            models.CheckConstraint(condition=models.Q(last_sequence__gte=0), name="board_last_sequence_gte_0"),
        ]

    def __str__(self) -> str:
        return self.title


class BoardUpdate(models.Model):
    """One Yjs v1 update, in the board's log. Append-only (compaction may delete old ones once a
    snapshot covers them)."""

    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="updates")
    sequence = models.BigIntegerField()
    update = models.BinaryField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # Made by the client: a resend is acked with the original number and not applied twice.
    client_update_id = models.UUIDField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["board", "sequence"], name="boardupdate_board_sequence"),
            models.UniqueConstraint(fields=["board", "client_update_id"], name="boardupdate_board_client_update_id"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} of {self.board_id}"


class BoardSnapshot(models.Model):
    """The merged state of every update of the board numbered ≤ `sequence` (a Yjs v1 update of
    the whole document)."""

    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="snapshots")
    sequence = models.BigIntegerField()
    state = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["board", "sequence"], name="boardsnapshot_board_sequence")]

    def __str__(self) -> str:
        return f"snapshot at #{self.sequence} of {self.board_id}"


class BoardComment(models.Model):
    """A comment on a board, anchored on an element (`element_id`) or a point (`x`, `y`). Replies
    name their thread's first comment as `parent` (threads are one level). Deleting sets
    `deleted_at` (a tombstone keeps the thread readable)."""

    BODY_MAX_LENGTH = 4000

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies")
    element_id = models.CharField(max_length=200, null=True, blank=True)
    x = models.FloatField(null=True, blank=True)
    y = models.FloatField(null=True, blank=True)
    body = models.TextField()
    resolved = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["board", "created_at"], name="boardcomment_board_created")]

    def __str__(self) -> str:
        return f"comment {self.id} on {self.board_id}"
