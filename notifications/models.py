"""Each user's notification inbox and their notification level per room (docs/notifications.md)."""

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone

from rooms.models import Room


class Notification(models.Model):
    """One item of a user's inbox: a message that concerns them. At most one per user and message
    (the first reason wins: a mention, then @room, then a reply, then a direct message)."""

    class Kind(models.TextChoices):
        MENTION = "mention"  # @username
        ROOM = "room"  # @room, from an owner or admin
        REPLY = "reply"  # a reply in a thread the user started or replied in
        DIRECT = "direct"  # a message in a direct room

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    # The message (partitioned by created_at: both name it; messaging.models.Message).
    message_id = models.UUIDField()
    message_created_at = models.DateTimeField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "message_id"], name="notification_user_message_unique"),
        ]
        indexes = [
            # The inbox, newest first, paged by id (notifications.selectors).
            models.Index(fields=["user", "-id"], name="notification_user_newest"),
            # Unread counts.
            models.Index(fields=["user"], condition=models.Q(read_at__isnull=True), name="notification_user_unread"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.user_id} ({self.message_id})"


class RoomSetting(models.Model):
    """A member's notification level in a room; no row means the default, `mentions`."""

    class Level(models.TextChoices):
        ALL = "all"  # a browser notification for every new message, and the inbox as for `mentions`
        MENTIONS = "mentions"  # the inbox: mentions, @room, replies in my threads, direct messages
        MUTE = "mute"  # nothing, except a mention by name (@username)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.MENTIONS)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "room"], name="roomsetting_user_room_unique")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.room_id}: {self.level}"


class PendingNotification(models.Model):
    """Notifications owed for a message (docs/notifications.md, "Durability"): written in the
    message's own transaction, only for a message that may notify anyone (mentions, a reply, a
    direct room, an edit naming someone new), and deleted in the transaction that delivers them.
    The fast path after commit claims its row by deleting it; whatever a dead process left behind,
    the sweeper (notifications.tasks.deliver_pending) delivers. Whoever deletes the row delivers,
    so the two can never both notify; the inbox's unique (user, message) backs that up."""

    message_id = models.UUIDField()
    message_created_at = models.DateTimeField()
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+", db_index=False)
    # The message's changed_sequence as this write left it: one row per write (a send, an edit),
    # so two quick edits each own theirs.
    number = models.BigIntegerField()
    edit = models.BooleanField(db_default=False)
    created_at = models.DateTimeField(db_default=Now())
    # Failed deliveries by the sweeper (a row that keeps failing is given up after a few).
    attempts = models.SmallIntegerField(db_default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message_id", "number"], name="pendingnotification_message_number"),
        ]

    def __str__(self) -> str:
        return f"owed for {self.message_id} at {self.number}"
