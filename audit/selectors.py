"""Reading the audit log: the entries an export or the admin asks for."""

import datetime as dt
from dataclasses import dataclass

from django.db.models import QuerySet

from audit.models import GLOBAL_SCOPE, AuditEntry


@dataclass(frozen=True)
class Filters:
    scope: str = GLOBAL_SCOPE
    after_position: int = 0
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    action: str = ""

    def summary(self) -> dict[str, object]:
        """What was asked for, for the export's own entry (only what was set)."""
        asked: dict[str, object] = {"scope": self.scope}
        if self.after_position:
            asked["after_position"] = self.after_position
        if self.since is not None:
            asked["since"] = self.since.isoformat()
        if self.until is not None:
            asked["until"] = self.until.isoformat()
        if self.action:
            asked["action"] = self.action
        return asked


def entries(*, filters: Filters, entry_ids: list[int] | None = None) -> QuerySet[AuditEntry]:
    """Entries of one chain matching `filters` (and among `entry_ids`, when given), oldest first."""
    rows = AuditEntry.objects.filter(scope=filters.scope, position__gt=filters.after_position)
    if filters.since is not None:
        rows = rows.filter(created_at__gte=filters.since)
    if filters.until is not None:
        rows = rows.filter(created_at__lt=filters.until)
    if filters.action:
        rows = rows.filter(action=filters.action)
    if entry_ids is not None:
        rows = rows.filter(pk__in=entry_ids)
    return rows.order_by("position")


def may_read(*, user, scope: str) -> bool:
    """Who may browse and export a chain (docs/audit.md "Who reads the log"): site staff any
    chain; a workspace's owners and admins its own chain (`workspace:<id>`), nobody else's."""
    from workspaces.selectors import role_in
    from workspaces.services import MANAGING_ROLES

    if not (user.is_authenticated and user.is_active):
        return False
    if user.is_staff:
        return True
    kind, _, workspace_id = scope.partition(":")
    if kind != "workspace" or not workspace_id.isdigit():
        return False
    return role_in(user_id=user.pk, workspace_id=int(workspace_id)) in MANAGING_ROLES


def reads_any(*, user) -> bool:
    """Whether `user` may read some chain: staff, or an owner or admin of some workspace."""
    from workspaces.models import WorkspaceMembership
    from workspaces.services import MANAGING_ROLES

    if not (user.is_authenticated and user.is_active):
        return False
    return user.is_staff or WorkspaceMembership.objects.filter(user_id=user.pk, role__in=MANAGING_ROLES).exists()


def recent(*, scope: str, before_position: int | None = None, action: str = "", limit: int = 50) -> list[AuditEntry]:
    """A page of a chain's entries, newest first (the browse page): those before `before_position`."""
    rows = AuditEntry.objects.filter(scope=scope)
    if before_position is not None:
        rows = rows.filter(position__lt=before_position)
    if action:
        rows = rows.filter(action=action)
    return list(rows.order_by("-position")[:limit])
