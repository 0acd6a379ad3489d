"""Workspaces: the unit of isolation (docs/workspaces.md).

Every room belongs to one workspace (rooms.Room.workspace); boards belong to their room's. People
belong to workspaces through WorkspaceMembership, with a role. Who may see what is still
rooms.access / rooms.selectors: they add the workspace rule (rooms.access.scoped_kind)."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Workspace(models.Model):
    NAME_MAX_LENGTH = 80

    name = models.CharField(max_length=NAME_MAX_LENGTH)
    slug = models.SlugField(max_length=50, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The workspace every account joins when it is made (sign-up, admin, createsuperuser): the one
    # the data migration created for the rooms that existed before workspaces. At most one.
    is_default = models.BooleanField(default=False, editable=False)
    # Per-workspace limits (seed 004's user_limits), checked by the services that create things
    # (workspaces.limits). Defaults fit a team; operators raise them in admin.
    max_rooms = models.PositiveIntegerField(default=500)
    max_boards = models.PositiveIntegerField(default=1000)
    max_storage_bytes = models.BigIntegerField(default=10 * 2**30)
    max_concurrent_simulations = models.PositiveIntegerField(default=10)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="workspace_one_default"),
            models.CheckConstraint(condition=Q(max_storage_bytes__gte=0), name="workspace_storage_gte_0"),
        ]

    def __str__(self) -> str:
        return self.name


class WorkspaceMembership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"
        # Sees only the rooms they are added to: no discovery, no joining public rooms.
        GUEST = "guest"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workspace_memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="workspace_membership_unique"),
        ]
        indexes = [models.Index(fields=["user", "joined_at"], name="workspace_membership_user")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.workspace_id} as {self.role}"


class WorkspaceInvitation(models.Model):
    """An invitation to a workspace: a link anyone signed in may use until it expires (email is
    empty), or an email sent to one address, used once by the account with that address. The
    token people get is signed (django.core.signing, with its expiry); this row says what it
    grants and whether it was revoked or used."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(blank=True, default="")
    role = models.CharField(max_length=10, choices=WorkspaceMembership.Role.choices, default="member")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(role="owner"), name="workspace_invitation_not_owner"),
        ]

    def __str__(self) -> str:
        return f"invitation {self.pk} to {self.workspace_id}"
