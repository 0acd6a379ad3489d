"""The hash chain, with no Django in it: how an entry is hashed, and how a chain is checked.

An entry's hash is SHA-256 over the canonical JSON of its fields (sorted keys, no spaces, UTF-8)
including the previous entry's hash, so changing, removing or reordering any entry changes every
hash after it. verify_audit, the JSON-lines export and an outside verifier all use exactly this.
"""

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

VERSION = 1
# What goes into the hash, besides "v" (VERSION). `hash` itself and the row id do not.
HASHED_FIELDS = (
    "scope",
    "position",
    "created_at",
    "actor_id",
    "actor_username",
    "action",
    "target_type",
    "target_id",
    "before",
    "after",
    "ip",
    "prev_hash",
)


def timestamp(value: dt.datetime) -> str:
    """UTC, microseconds, always the same spelling (PostgreSQL keeps microseconds exactly)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(fields: Mapping[str, Any]) -> bytes:
    body: dict[str, Any] = {name: fields[name] for name in HASHED_FIELDS}
    body["v"] = VERSION
    if isinstance(body["created_at"], dt.datetime):
        body["created_at"] = timestamp(body["created_at"])
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def entry_hash(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(fields)).hexdigest()


@dataclass(frozen=True)
class Break:
    """The first place a chain does not hold: which entry (position, row id) and why."""

    position: int
    entry_id: int | None
    reason: str

    def __str__(self) -> str:
        where = f"entry #{self.position}" + (f" (id {self.entry_id})" if self.entry_id is not None else "")
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class Verdict:
    scope: str
    checked: int
    head_hash: str
    broken: Break | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def verify(scope: str, entries: Iterable[Mapping[str, Any]], *, genesis: str, head: tuple[int, str] | None) -> Verdict:
    """Check `entries` (in position order) link up from `genesis`, each hash matching its fields,
    and end where the chain's head row says (`head` = (length, head_hash); None: no head row).
    Stops at the first break."""
    expected_prev, expected_position, checked = genesis, 1, 0
    for entry in entries:
        position, entry_id = entry["position"], entry.get("id")
        if position != expected_position:
            if position < expected_position:
                reason = f"out of order after entry #{expected_position - 1}"
            elif position == expected_position + 1:
                reason = f"entry #{expected_position} is missing before it (deleted?)"
            else:
                reason = f"entries #{expected_position}..{position - 1} are missing before it (deleted?)"
            return Verdict(scope, checked, expected_prev, Break(position, entry_id, reason))
        if entry["prev_hash"] != expected_prev:
            reason = "its previous-hash does not match the entry before it (an entry was removed or replaced)"
            return Verdict(scope, checked, expected_prev, Break(position, entry_id, reason))
        if entry_hash(entry) != entry["hash"]:
            reason = "its contents do not match its hash (the row was changed)"
            return Verdict(scope, checked, expected_prev, Break(position, entry_id, reason))
        expected_prev, expected_position, checked = entry["hash"], expected_position + 1, checked + 1
    length = expected_position - 1
    if head is None:
        if length:
            return Verdict(scope, checked, expected_prev, Break(length, None, "the chain's head row is missing"))
        return Verdict(scope, checked, expected_prev, None)
    head_length, head_hash = head
    if head_length > length:
        reason = f"the chain's head says {head_length} entries: entries #{length + 1}..{head_length} are missing"
        return Verdict(scope, checked, expected_prev, Break(length + 1, None, reason))
    if head_length < length or head_hash != expected_prev:
        reason = f"the chain's head (length {head_length}, hash {head_hash[:12]}…) does not match its last entry"
        return Verdict(scope, checked, expected_prev, Break(length, None, reason))
    return Verdict(scope, checked, expected_prev, None)
