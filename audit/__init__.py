"""The audit log. Services record what they did with one call, in the transaction that did it:

    import audit
    audit.record(action="room.delete", actor=user, target=room, before={"name": room.name})

`record` is audit.services.record, imported on first use (this package is imported while Django
loads its apps, before models can be). A service that records and then locks more rows wraps
that part in `with audit.deferred():` (its entries are written at the block's end: the chain's
head stays the transaction's last lock; docs/audit.md)."""

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit.models import AuditEntry


def record(
    *,
    action: str,
    actor: Any,
    target: object = None,
    before: Mapping[str, object] | None = None,
    after: Mapping[str, object] | None = None,
    ip: str | None = None,
    scope: str | None = None,
) -> "AuditEntry | None":
    """Append one entry to the audit log, in the caller's transaction: see audit.services.record."""
    from audit import services
    from audit.models import GLOBAL_SCOPE

    return services.record(
        action=action, actor=actor, target=target, before=before, after=after, ip=ip, scope=scope or GLOBAL_SCOPE
    )


def workspace_scope(workspace_id: int) -> str:
    """The chain of a workspace (docs/audit.md "Chains"): its own entries and those of its rooms,
    boards and messages."""
    return f"workspace:{workspace_id}"


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Write the entries recorded inside the block when the outermost block ends: see
    audit.services.deferred."""
    from audit import services

    with services.deferred():
        yield
