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
