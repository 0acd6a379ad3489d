"""Faults injected into a run: before it starts (`simulate(..., faults=[...])`) or while it runs
(`Simulation.inject`, or faults returned by the `progress` callback)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FAULT_KINDS = ("kill", "latency", "error", "slow", "partition")


@dataclass(frozen=True)
class Fault:
    """From `at_s` (simulated seconds) until `until_s` (None: the end of the run):

    - ``kill``: stop `count` instances (service instances, database replicas then the primary, queue workers; a
      DNS, load balancer, gateway, object storage or external API is down altogether; a cache or CDN is
      partitioned). Their requests in progress still complete.
    - ``latency``: add `latency_ms` to every request through the component.
    - ``error``: `error_rate` of the requests through the component fail.
    - ``slow``: the component's service time is multiplied by `factor`.
    - ``partition``: a cache or CDN is cut off: every read misses.
    """

    kind: str
    component_id: str
    at_s: float = 0.0
    until_s: float | None = None
    count: int = 1
    latency_ms: float = 0.0
    error_rate: float = 1.0
    factor: float = 2.0

    def active(self, t: float) -> bool:
        return self.at_s <= t and (self.until_s is None or t < self.until_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "component_id": self.component_id,
            "at_s": self.at_s,
            "until_s": self.until_s,
            "count": self.count,
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "factor": self.factor,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        until = data.get("until_s")
        return cls(
            kind=str(data["kind"]),
            component_id=str(data["component_id"]),
            at_s=float(data.get("at_s", 0.0)),
            until_s=None if until is None else float(until),
            count=int(data.get("count", 1)),
            latency_ms=float(data.get("latency_ms", 0.0)),
            error_rate=float(data.get("error_rate", 1.0)),
            factor=float(data.get("factor", 2.0)),
        )


def check_fault(fault: Fault, kinds: dict[str, str]) -> str | None:
    """Why the fault cannot apply to the design (kinds: component id → kind), or None."""
    if fault.kind not in FAULT_KINDS:
        return f"unknown fault kind '{fault.kind}'"
    kind = kinds.get(fault.component_id)
    if kind is None:
        return f"no component '{fault.component_id}'"
    if kind == "client":
        return "a client population cannot be faulted"
    if fault.kind == "partition" and kind not in ("cache", "cdn"):
        return "only a cache or a CDN can be partitioned"
    if fault.at_s < 0 or (fault.until_s is not None and fault.until_s <= fault.at_s):
        return "a fault needs 0 ≤ at_s < until_s"
    if fault.kind == "kill" and fault.count < 1:
        return "kill needs count ≥ 1"
    if fault.kind == "error" and not 0.0 <= fault.error_rate <= 1.0:
        return "error_rate must be within 0..1"
    if fault.kind == "slow" and fault.factor <= 0:
        return "factor must be positive"
    if fault.kind == "latency" and fault.latency_ms < 0:
        return "latency_ms must be ≥ 0"
    return None
