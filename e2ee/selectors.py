"""Reads for end-to-end encryption: whose device keys a user may see (docs/e2ee.md)."""

from django.db.models import QuerySet

from accounts.models import User
from core.errors import NotFound
from e2ee.models import Device
from workspaces.models import WorkspaceMembership


def device_owner_visible(*, viewer: User, user_ref: object) -> User:
    """The active user `user_ref` (a numeric id) if `viewer` shares a workspace with them (or is
    them): the people one can open a direct room with (rooms.selectors.user_find's rule). Anyone
    else is as unknown as a user who does not exist: `user_not_found`."""
    if isinstance(user_ref, int) or (isinstance(user_ref, str) and user_ref.isdigit() and len(user_ref) < 19):
        user_id = int(user_ref)
        people = User.objects.filter(pk=user_id, is_active=True)
        if user_id != viewer.pk:
            mine = WorkspaceMembership.objects.filter(user_id=viewer.pk).values("workspace_id")
            people = people.filter(workspace_memberships__workspace_id__in=mine)
        user = people.first()
        if user is not None:
            return user
    raise NotFound("No such user.", code="user_not_found")


def devices_of(*, user: User, include_revoked: bool = True) -> QuerySet[Device]:
    devices = Device.objects.filter(user=user)
    return devices if include_revoked else devices.filter(revoked_at__isnull=True)


def user_devices(*, viewer: User, user_ref: object) -> list[Device]:
    """The device keys of a person `viewer` may see (device_owner_visible), revoked ones included
    (marked): a client wraps message keys for the active ones and checks old senders against all."""
    return list(devices_of(user=device_owner_visible(viewer=viewer, user_ref=user_ref)))
