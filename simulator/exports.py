"""A run's results as a JSON file and as CSV tables, and two runs side by side."""

from datetime import UTC, datetime
from typing import Any

from simulator.models import SimulationRun
from simulator.payloads import run_detail_payload

TOP_SERIES = ("throughput_rps", "failures_rps", "p99_ms")
COMPONENT_COLUMNS = (
    "kind",
    "arrivals",
    "throughput_rps",
    "utilisation",
    "mean_sojourn_ms",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "queue_mean",
    "queue_max",
    "drops",
    "errors",
    "timeouts",
    "retries",
    "instances_mean",
)
END_TO_END_COLUMNS = ("requests", "throughput_rps", "success_rate", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "failed")
COMPARED_END_TO_END: tuple[str, ...] = ("requests", "succeeded", "failed", "success_rate", "throughput_rps")
COMPARED_END_TO_END += ("mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")
COMPARED_COMPONENT = ("utilisation", "throughput_rps", "p99_ms", "drops", "errors", "timeouts", "instances_mean")


def as_json(run: SimulationRun) -> dict[str, Any]:
    return {
        "format": "parley.simulation",
        "version": 1,
        "simulation": run_detail_payload(run),
        "exported_at": datetime.now(UTC).isoformat(),
    }


def write_csv(run: SimulationRun, writer: Any, *, table: str) -> None:
    results = run.results or {}
    if table == "series":
        series = results.get("time_series") or {}
        seconds = series.get("seconds") or []
        components = series.get("components") or {}
        connectors = series.get("connectors") or {}
        columns: list[tuple[str, list]] = [(name, series.get(name) or []) for name in TOP_SERIES]
        for cid in sorted(components):
            columns += [(f"{cid}.{name}", values) for name, values in sorted(components[cid].items())]
        columns += [(f"{kid}.rps", values) for kid, values in sorted(connectors.items())]
        writer.writerow(["second", *(name for name, _ in columns)])
        for i, second in enumerate(seconds):
            writer.writerow([second, *(_cell(values[i] if i < len(values) else None) for _, values in columns)])
        return
    writer.writerow(["component_id", *COMPONENT_COLUMNS])
    for cid, figures in (results.get("components") or {}).items():
        writer.writerow([cid, *(_cell(figures.get(name)) for name in COMPONENT_COLUMNS)])
    if results:
        end_to_end = results.get("end_to_end") or {}
        row = ["(end to end)", "", end_to_end.get("requests"), end_to_end.get("throughput_rps"), ""]
        row += [end_to_end.get(name) for name in ("mean_ms", "p50_ms", "p95_ms", "p99_ms")]
        row += ["", "", "", end_to_end.get("failed"), "", "", ""]
        writer.writerow([_cell(v) for v in row])


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _delta(a: Any, b: Any) -> float | None:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return round(float(b) - float(a), 6)
    return None


def compare(a: SimulationRun, b: SimulationRun) -> dict[str, Any]:
    ra, rb = a.results or {}, b.results or {}
    ea, eb = ra.get("end_to_end") or {}, rb.get("end_to_end") or {}
    end_to_end = [
        {"metric": name, "a": ea.get(name), "b": eb.get(name), "delta": _delta(ea.get(name), eb.get(name))}
        for name in COMPARED_END_TO_END
    ]
    cost_a, cost_b = (ra.get("cost") or {}).get("per_hour"), (rb.get("cost") or {}).get("per_hour")
    end_to_end.append({"metric": "cost_per_hour", "a": cost_a, "b": cost_b, "delta": _delta(cost_a, cost_b)})
    bottleneck_a = (ra.get("bottleneck") or {}).get("component_id")
    bottleneck_b = (rb.get("bottleneck") or {}).get("component_id")
    end_to_end.append({"metric": "bottleneck", "a": bottleneck_a, "b": bottleneck_b, "delta": None})
    ca, cb = ra.get("components") or {}, rb.get("components") or {}
    components: dict[str, dict[str, Any]] = {}
    for cid in [*ca, *(c for c in cb if c not in ca)]:
        fa, fb = ca.get(cid) or {}, cb.get(cid) or {}
        components[cid] = {
            name: {"a": fa.get(name), "b": fb.get(name), "delta": _delta(fa.get(name), fb.get(name))}
            for name in COMPARED_COMPONENT
        }
    return {"a": run_detail_payload(a), "b": run_detail_payload(b), "end_to_end": end_to_end, "components": components}
