import uuid

from django.conf import settings
from django.db import models


class Room(models.Model):
    NAME_MAX_LENGTH = 80
    TOPIC_MAX_LENGTH = 250

    class Kind(models.TextChoices):
        PUBLIC = "public"
        PRIVATE = "private"
        DIRECT = "direct"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    topic = models.CharField(max_length=TOPIC_MAX_LENGTH, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PUBLIC)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # Every room belongs to one workspace (docs/workspaces.md); its boards with it. A workspace with
    # rooms cannot be deleted by accident (PROTECT): its rooms go first, through rooms.services.
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.PROTECT, related_name="rooms")
    # The last sequence number handed out in this room. Only messaging.services touches it,
    # with UPDATE ... RETURNING inside the sending transaction (messaging.services: _SEND and
    # _next_sequence).
    last_sequence = models.BigIntegerField(default=0, editable=False)
    # "<workspace id>:<low user id>:<high user id>" for direct rooms, so one pair never gets two
    # rooms in one workspace.
    direct_key = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)
    # End-to-end encryption (e2ee/, docs/e2ee.md), direct rooms only and one way: the sequence of
    # the notice that turned it on; null while the room is not encrypted. From then on the room's
    # messages are envelopes the server cannot read (messaging.services refuses plain text).
    encrypted_since = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind="direct", direct_key__isnull=False)
                | (~models.Q(kind="direct") & models.Q(direct_key__isnull=True)),
                name="room_direct_key_iff_direct",
            ),
            models.CheckConstraint(condition=models.Q(last_sequence__gte=0), name="room_last_sequence_gte_0"),
            models.CheckConstraint(
                condition=models.Q(encrypted_since__isnull=True) | models.Q(kind="direct"),
                name="room_encrypted_only_direct",
            ),
        ]

    def __str__(self) -> str:
        return self.name


# The kinds a person can create or switch a room to; direct rooms only come from direct_room_get_or_create.
OPEN_ROOM_KINDS = [(Room.Kind.PUBLIC.value, "Public"), (Room.Kind.PRIVATE.value, "Private")]


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"
        VIEWER = "viewer"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)
    # Receipt marks: this member's devices have received / the member has read the room's history
    # up to these sequence numbers. They only move forward (messaging.services.receipt_update).
    delivered_sequence = models.BigIntegerField(default=0)
    read_sequence = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="membership_room_user_unique")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.room_id} as {self.role}"
