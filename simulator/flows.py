"""Traffic along each connector, for the canvas (flow animated in proportion, labels): the source
component's measured throughput split as its routing sends it (read/write classes, routes, weights,
a cache's or CDN's miss ratio), from the engine's analysis. An estimate: the engine measures
components, not connectors (faults that change a split, e.g. a partitioned cache, show in the
components' figures first)."""

from typing import Any

from simulator.engine import analysis
from simulator.engine.design import Design, DesignError


def connector_shares(design: dict[str, Any]) -> dict[str, tuple[str, float]]:
    """Connector id → (source component id, share of the source's requests that take it)."""
    try:
        parsed = Design.from_json(design)
    except DesignError:
        return {}
    components = {c.id: c for c in parsed.components}
    nominal = analysis.visit_rates(parsed)
    shares: dict[str, tuple[str, float]] = {}
    for connector in parsed.connectors:
        source = components.get(connector.source)
        if source is None or connector.target not in components:
            continue
        reads, writes = nominal[source.id]
        total = reads + writes
        flow = 0.0
        for cls, rate in (("read", reads), ("write", writes)):
            eligible = [
                k
                for k in parsed.connectors
                if k.source == source.id and k.route in ("any", "miss", cls) and float(k.weight) > 0
            ]
            weights = sum(float(k.weight) for k in eligible)
            if connector in eligible and weights > 0:
                flow += rate * analysis._passes(source, cls) * float(connector.weight) / weights
        shares[connector.id] = (source.id, flow / total if total > 0 else 0.0)
    return shares


def connector_flows(
    shares: dict[str, tuple[str, float]], components: dict[str, dict[str, Any]]
) -> dict[str, dict[str, float]]:
    """Connector id → {"rps"}: the source's throughput (`throughput_rps` in a snapshot or results; a
    client's `rate_rps`) × its share."""
    flows: dict[str, dict[str, float]] = {}
    for connector_id, (source, share) in shares.items():
        figures = components.get(source) or {}
        rate = next((figures[k] for k in ("throughput_rps", "rate_rps", "arrivals_rps") if k in figures), None)
        if isinstance(rate, int | float):
            flows[connector_id] = {"rps": round(float(rate) * share, 3)}
    return flows
