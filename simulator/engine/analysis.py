"""Analytical capacity of a design: how many requests per second reach each component (visit ratios from the
routing: read ratio, hit ratios, connector weights and routes) and the rate at which each one saturates.

For a component with capacity μ (requests per second it can serve: servers / mean service time, a rate limit,
a cache's operations per second) that receives v requests per client request, the design saturates there at
μ / v client requests per second. The smallest of these is the design's capacity; its component is the
bottleneck. Retries and timeouts are not in this estimate (the run shows them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .design import Component, Design
from .palette import CACHING_KINDS, PALETTE


def nominal_rate(c: Component) -> float:
    """A client population's representative rate: its rate (a ramp's end, a spike's base, a diurnal mean)."""
    return float(c.param("rate"))


def peak_rate(c: Component) -> float:
    pattern = c.param("pattern")
    rate = float(c.param("rate"))
    if pattern == "spike":
        return rate * float(c.param("spike_multiplier"))
    if pattern == "diurnal":
        return rate * (1 + float(c.param("diurnal_amplitude")))
    if pattern == "ramp":
        return max(rate, float(c.param("ramp_from")))
    return rate


def routing(design: Design) -> dict[str, dict[str, list[tuple[str, float]]]]:
    """For each component and request class (read, write): [(target, probability)]."""
    out: dict[str, dict[str, list[tuple[str, float]]]] = {}
    for c in design.components:
        table: dict[str, list[tuple[str, float]]] = {}
        for cls in ("read", "write"):
            eligible = [
                (k.target, float(k.weight))
                for k in design.connectors
                if k.source == c.id and k.route in ("any", "miss", cls) and float(k.weight) > 0
            ]
            total = sum(w for _, w in eligible)
            table[cls] = [(t, w / total) for t, w in eligible] if total > 0 else []
        out[c.id] = table
    return out


def _passes(c: Component, cls: str) -> float:
    """Share of the component's requests of this class that go on to its connectors."""
    if c.kind in CACHING_KINDS and cls == "read":
        return 1.0 - float(c.param("hit_ratio"))
    return 1.0


def visit_rates(design: Design, rates: dict[str, float] | None = None) -> dict[str, tuple[float, float]]:
    """(reads/s, writes/s) arriving at each component when the clients send their nominal rates (or `rates`).

    Flow is propagated in topological order; edges out of queues may close cycles and are followed once."""
    reads = {c.id: 0.0 for c in design.components}
    writes = {c.id: 0.0 for c in design.components}
    comps = {c.id: c for c in design.components}
    for c in design.components:
        if c.kind == "client":
            r = (rates or {}).get(c.id, nominal_rate(c))
            rr = float(c.param("read_ratio"))
            reads[c.id] = r * rr
            writes[c.id] = r * (1 - rr)
    table = routing(design)
    for cid in topological_order(design):
        c = comps[cid]
        for cls, store in (("read", reads), ("write", writes)):
            out = store[cid] * _passes(c, cls)
            for target, p in table[cid][cls]:
                if target in store:
                    store[target] += out * p
    return {cid: (reads[cid], writes[cid]) for cid in comps}


def topological_order(design: Design) -> list[str]:
    """Components in an order where every connector goes forward, except those leaving a queue (they may close
    a cycle). Components in a cycle without a queue (an invalid design) keep their design order at the end."""
    ids = [c.id for c in design.components]
    kinds = {c.id: c.kind for c in design.components}
    indeg = dict.fromkeys(ids, 0)
    succ: dict[str, list[str]] = {i: [] for i in ids}
    for k in design.connectors:
        if k.source in indeg and k.target in indeg and kinds[k.source] != "queue":
            succ[k.source].append(k.target)
            indeg[k.target] += 1
    ready = [i for i in ids if indeg[i] == 0]
    order: list[str] = []
    while ready:
        v = ready.pop(0)
        order.append(v)
        for w in succ[v]:
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(w)
    order.extend(i for i in ids if i not in order)
    return order


@dataclass
class Capacity:
    component_id: str
    kind: str
    capacity_rps: float  # requests per second the component itself can serve (inf: no limit modelled)
    load_rps: float  # requests per second reaching it at the clients' nominal rates
    max_client_rps: float  # client rate at which it saturates
    detail: str
    advice: str

    def to_json(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if not math.isfinite(x) else round(x, 3)

        return {
            "component_id": self.component_id,
            "kind": self.kind,
            "capacity_rps": num(self.capacity_rps),
            "load_rps": round(self.load_rps, 3),
            "max_client_rps": num(self.max_client_rps),
            "utilisation": num(self.load_rps / self.capacity_rps) if self.capacity_rps > 0 else None,
            "detail": self.detail,
            "advice": self.advice,
        }


def capacities(design: Design) -> list[Capacity]:
    """Capacity and headroom of every component (at the clients' nominal rates)."""
    rates = visit_rates(design)
    client_total = sum(nominal_rate(c) for c in design.components if c.kind == "client")
    out: list[Capacity] = []
    for c in design.components:
        r, w = rates[c.id]
        load = r + w
        cap = math.inf
        detail = "no capacity limit modelled"
        advice = ""
        p = c.param
        if c.kind == "service":
            n, k, ms = int(p("instances")), int(p("concurrency")), float(p("service_ms"))
            cap = n * k / (ms / 1000)
            detail = f"{n} instance{'s' if n != 1 else ''} × {k} concurrent / {ms:g} ms"
            advice = f"add instances (each adds {k / (ms / 1000):,.0f} rps) or enable autoscaling"
            if p("autoscale"):
                mx = int(p("max_instances"))
                cap = mx * k / (ms / 1000)
                detail = f"up to {mx} instances (autoscaling) × {k} concurrent / {ms:g} ms"
                advice = "raise max_instances"
        elif c.kind == "database":
            pool = int(p("pool_size"))
            rms, wms = float(p("read_ms")) / 1000, float(p("write_ms")) / 1000
            replicas = int(p("read_replicas")) if p("reads_from_replicas") else 0
            if replicas:
                primary_work = w * wms
                replica_work = r * rms / replicas
            else:
                primary_work = r * rms + w * wms
                replica_work = 0.0
            busiest = max(primary_work, replica_work)
            # Capacity in this component's own mix of requests.
            cap = load * pool / busiest if busiest > 0 else math.inf
            node = "a replica" if replica_work > primary_work else "the primary"
            detail = f"{node} saturates first ({pool} connections, reads {rms * 1000:g} ms, writes {wms * 1000:g} ms)"
            if replica_work > primary_work or (not replicas and r * rms > w * wms):
                advice = "add a read replica or a cache in front of it"
            else:
                advice = "writes dominate: batch them, put a queue in front, or shard the primary"
        elif c.kind == "cache":
            cap = float(p("capacity_ops"))
            detail = f"{cap:,.0f} operations per second"
            advice = "shard the cache (more nodes) or cache less chatty"
        elif c.kind == "queue":
            wk, ms = int(p("workers")), float(p("worker_ms"))
            cap = wk / (ms / 1000)
            detail = f"{wk} workers / {ms:g} ms"
            advice = f"add workers (each adds {1000 / ms:,.0f} messages/s)"
        elif c.kind == "api_gateway" and float(p("rate_limit_rps")) > 0:
            cap = float(p("rate_limit_rps"))
            detail = f"rate limit {cap:,.0f} rps"
            advice = "raise the rate limit"
        share = load / client_total if client_total > 0 else 0.0
        max_client = cap / share if share > 0 and math.isfinite(cap) else math.inf
        out.append(Capacity(c.id, c.kind, cap, load, max_client, detail, advice))
    return out


def headroom_message(cap: Capacity) -> str:
    label = PALETTE[cap.kind].label.lower() if cap.kind in PALETTE else cap.kind
    if not math.isfinite(cap.max_client_rps):
        return f"the {label} '{cap.component_id}' has no modelled limit"
    return (
        f"the {label} '{cap.component_id}' saturates at {cap.max_client_rps:,.0f} client rps "
        f"({cap.detail}; it serves up to {cap.capacity_rps:,.0f} rps); {cap.advice}"
    )
