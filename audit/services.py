"""The audit log's writes: `record` (called by other apps' services, in their transaction) and
exports (admin action, REST, management command), which are recorded too."""

import contextlib
import datetime as dt
import json
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models, transaction
from django.utils import timezone

from audit import chain, context, selectors
from audit.models import GENESIS_HASH, GLOBAL_SCOPE, AuditChain, AuditEntry

_TEXT_MAX = 200  # a summary value longer than this is cut: summaries name things, they hold no texts
_DEPTH_MAX = 4


def _plain(value: object, depth: int = 0) -> object:
    """A summary value as JSON that PostgreSQL's jsonb gives back unchanged (so the hash verifies):
    strings (cut, NUL-free), ints, booleans, None, and lists/objects of them; anything else as text."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):  # lone surrogates (from JSON escapes) cannot be stored or hashed
        return value[:_TEXT_MAX].replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if depth < _DEPTH_MAX and isinstance(value, Mapping):
        return {str(key)[:_TEXT_MAX]: _plain(item, depth + 1) for key, item in value.items()}
    if depth < _DEPTH_MAX and isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [_plain(item, depth + 1) for item in items]
    if isinstance(value, dt.datetime):
        return chain.timestamp(value)
    return _plain(str(value), depth)


def _target(target: object) -> tuple[str, str]:
    if target is None:
        return "", ""
    if isinstance(target, tuple):
        kind, ident = target
        return str(kind)[:64], str(ident)[:64]
    if isinstance(target, models.Model):
        return target._meta.model_name or "", str(target.pk)[:64]
    raise TypeError(f"an audit target is a model instance or (type, id), not {type(target).__name__}")


def _head(scope: str) -> AuditChain:
    """The chain's head row, locked until the transaction ends: a chain has one writer at a time,
    so positions and previous hashes never fork. Created on first use (a new scope, or after
    the test suite's flush empties the table)."""
    head = AuditChain.objects.select_for_update().filter(scope=scope).first()
    if head is None:
        AuditChain.objects.bulk_create([AuditChain(scope=scope)], ignore_conflicts=True)
        head = AuditChain.objects.select_for_update().get(scope=scope)
    return head


# Entries recorded inside `deferred()`, written when its outermost block ends (None: write at once).
_pending: ContextVar[list[dict[str, Any]] | None] = ContextVar("parley_audit_pending", default=None)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Entries recorded inside the block are written together when the outermost block ends, so
    the chain's head is the last lock the transaction takes even when the block records something
    and then locks more rows (rooms.services.ownership_transfer: two role changes in a row, each
    recorded). Use it inside the transaction (`transaction.atomic` around it): the entries are
    still written in that transaction, and a block that raises writes none."""
    outer = _pending.get()
    if outer is not None:  # nested: the outermost block writes everything
        yield
        return
    pending: list[dict[str, Any]] = []
    token = _pending.set(pending)
    try:
        yield
    finally:
        _pending.reset(token)
    # Only reached when the block did not raise. Chain by chain, in scope order ("global" before
    # "workspace:<id>"), each chain's entries in the order recorded: a transaction that writes to
    # two chains locks their heads in the same order as every other one, so two of them cannot
    # each hold one head while waiting for the other's (docs/audit.md "Chains").
    for entry in sorted(pending, key=lambda fields: fields["scope"]):
        _write(**entry)


def record(
    *,
    action: str,
    actor: AbstractBaseUser | AnonymousUser | None,
    target: object = None,
    before: Mapping[str, object] | None = None,
    after: Mapping[str, object] | None = None,
    ip: str | None = None,
    scope: str = GLOBAL_SCOPE,
) -> AuditEntry | None:
    """Append one entry to `scope`'s chain, in the caller's transaction (a rolled-back action
    leaves no entry). `target` is a model instance or a (type, id) pair; `before`/`after` are
    short summaries, never message texts or secrets. `ip` defaults to the current request's or
    socket's address (audit.context).

    The chain's head stays locked until the caller's transaction ends, so call this last in it,
    or inside `deferred()`, which writes it at the block's end (and returns None here)."""
    user = actor if actor is not None and actor.is_authenticated else None
    target_type, target_id = _target(target)
    fields: dict[str, Any] = {
        "scope": scope,
        "actor_id": user.pk if user is not None else None,
        # Taken now: a deferred entry names the actor as they were when they acted.
        "actor_username": (user.get_username() if user is not None else "")[:150],
        "action": action[:64],
        "target_type": target_type,
        "target_id": target_id,
        "before": _plain(dict(before)) if before is not None else None,
        "after": _plain(dict(after)) if after is not None else None,
        "ip": context.clean_ip(ip) if ip is not None else context.client_ip(),
    }
    pending = _pending.get()
    if pending is not None:
        pending.append(fields)
        return None
    return _write(**fields)


def _write(**fields: Any) -> AuditEntry:
    scope = fields["scope"]
    with transaction.atomic():
        head = _head(scope)
        fields["position"] = head.length + 1
        # PostgreSQL keeps the microseconds: what is read back hashes the same.
        fields["created_at"] = timezone.now().astimezone(dt.UTC)
        fields["prev_hash"] = head.head_hash
        fields["hash"] = chain.entry_hash(fields)
        entry = AuditEntry.objects.create(**fields)
        AuditChain.objects.filter(scope=scope).update(length=head.length + 1, head_hash=fields["hash"])
    return entry


# -- exports ---------------------------------------------------------------------------------------


def entry_line(entry: Mapping[str, Any]) -> str:
    """One entry as a JSON line, with everything needed to check its hash outside Parley."""
    fields = {name: entry[name] for name in (*chain.HASHED_FIELDS, "hash")}
    fields["created_at"] = chain.timestamp(fields["created_at"])
    fields["id"] = entry["id"]
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def export_lines(
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    via: str,
    filters: selectors.Filters,
    limit: int | None = None,
    entry_ids: list[int] | None = None,
) -> Iterator[str]:
    """The chosen entries as JSON lines, oldest first. The export itself is recorded first (who,
    how, what was asked for), in its own committed transaction, before a line is produced."""
    asked = {"via": via, **filters.summary()}
    if limit is not None:
        asked["limit"] = limit
    if entry_ids is not None:
        asked["selected"] = len(entry_ids)
    record(action="audit.export", actor=actor, target=("audit_chain", filters.scope), after=asked)
    rows = selectors.entries(filters=filters, entry_ids=entry_ids)
    if limit is not None:
        rows = rows[:limit]
    return (entry_line(row) for row in rows.values().iterator(chunk_size=1000))


def verify_chain(*, scope: str = GLOBAL_SCOPE) -> chain.Verdict:
    """Check one chain from its first entry to its head row (manage.py verify_audit)."""
    head = AuditChain.objects.filter(scope=scope).values_list("length", "head_hash").first()
    entries = AuditEntry.objects.filter(scope=scope).order_by("position").values().iterator(chunk_size=2000)
    return chain.verify(scope, entries, genesis=GENESIS_HASH, head=head)
