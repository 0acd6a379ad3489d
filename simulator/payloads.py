"""The JSON shapes of simulations, the same over REST and the socket (docs/protocol.md
"Simulations"). TypedDicts document the OpenAPI schema (rooms.api.payload_serializer); the engine's
own figures (snapshots, results) are passed through as it makes them (`Any`: free-form JSON)."""

from typing import Annotated, Any, TypedDict

from rooms.payloads import DateTimeStr, UserPayload, UUIDStr, user_payload
from simulator.models import SimulationRun

RunStatus = Annotated[str, SimulationRun.Status]


class DesignProblemPayload(TypedDict):
    element_id: Annotated[str | None, "The component (or arrow) element it is about; null: the whole design"]
    code: Annotated[str, "e.g. dangling_connector, cycle_without_queue, no_entry_point, invalid_param"]
    message: str
    severity: Annotated[str, "`error` (stops a run) or `warning`"]


class BoardDesignPayload(TypedDict):
    """GET /boards/{id}/design/: the design the board's document holds, and its problems."""

    board: UUIDStr
    sequence: Annotated[int, "The board's update number the document was read at"]
    design: Annotated[Any, "{components: [{id, kind, params, x?, y?}], connectors: [{id, from, to, params}]}"]
    problems: list[DesignProblemPayload]
    valid: Annotated[bool, "No problem of severity `error`: the design can be run"]


class SimulationSummaryPayload(TypedDict):
    """The headline figures of a finished run (the whole results: GET /simulations/{id}/)."""

    end_to_end: Annotated[Any, "Requests, success rate, throughput, latency percentiles (no histogram)"]
    bottleneck: Annotated[Any, "component_id, saturated, reason, at_s, explanation"]
    cost: Annotated[Any, "currency, run, per_hour, per_month"]
    components: Annotated[Any, "Per component id: utilisation, throughput_rps, p99_ms, drops, errors, timeouts"]
    meta: Annotated[Any, "seed, duration_s, simulated_s, stopped_early, events"]
    connectors: Annotated[Any, "Per connector (arrow) id: {flows, rps}, the requests that took it"]


class SimulationRunPayload(TypedDict):
    id: UUIDStr
    board: UUIDStr
    room: UUIDStr
    status: RunStatus
    started_by: Annotated[UserPayload | None, "Null once the account is gone"]
    cancelled_by: UserPayload | None
    label: str
    seed: int
    duration_s: float
    speed: Annotated[float | None, "Simulated seconds per second of wall time; null: as fast as possible"]
    max_requests: Annotated[int, "Requests the run makes at most"]
    board_sequence: Annotated[int, "The board's update number the design was taken at"]
    faults: Annotated[Any, "Faults given at the start and injected since, as the engine took them"]
    progress: Annotated[Any, "The latest live figures: {t, fraction, snapshot}; null before the first"]
    summary: Annotated[SimulationSummaryPayload | None, "Once finished (done, or cancelled/failed with figures)"]
    error: Annotated[str, "Why it failed (status `failed`)"]
    created_at: DateTimeStr
    started_at: DateTimeStr | None
    finished_at: DateTimeStr | None


class SimulationRunDetailPayload(SimulationRunPayload):
    design: Annotated[Any, "The design the run simulated (taken from the board when it started)"]
    results: Annotated[
        Any,
        "The engine's results: meta, components, end_to_end, jobs, time_series, bottleneck, "
        "headroom, cost, faults; null until finished",
    ]


class SimulationRunList(TypedDict):
    results: list[SimulationRunPayload]


class SimulationFaultAckPayload(TypedDict):
    run: UUIDStr
    command: int
    fault: Annotated[Any, "The fault as stored; the worker applies it within a fraction of a second"]


class SimulationCompareRowPayload(TypedDict):
    metric: str
    a: Annotated[Any, "The value in run `a` (number or null)"]
    b: Annotated[Any, "The value in run `b`"]
    delta: Annotated[float | None, "b − a when both are numbers"]


class SimulationComparePayload(TypedDict):
    a: SimulationRunDetailPayload
    b: SimulationRunDetailPayload
    end_to_end: list[SimulationCompareRowPayload]
    components: Annotated[
        Any,
        "Per component id present in either run: {metric: {a, b, delta}} for utilisation, "
        "throughput_rps, p99_ms, drops, errors",
    ]


class SimulationTemplatePayload(TypedDict):
    id: str
    title: str
    description: str
    design: Annotated[Any, "The design with x/y per component"]


class SimulationTemplateList(TypedDict):
    results: list[SimulationTemplatePayload]


def _dt(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


SUMMARY_COMPONENT_KEYS = (
    "kind",
    "utilisation",
    "throughput_rps",
    "p99_ms",
    "drops",
    "errors",
    "timeouts",
    "instances_mean",
)


def run_summary(results: dict[str, Any] | None) -> SimulationSummaryPayload | None:
    if not results:
        return None
    end_to_end = {k: v for k, v in (results.get("end_to_end") or {}).items() if k != "histogram_ms"}
    cost = {k: v for k, v in (results.get("cost") or {}).items() if k != "components"}
    components = {
        cid: {k: c.get(k) for k in SUMMARY_COMPONENT_KEYS} for cid, c in (results.get("components") or {}).items()
    }
    return {
        "end_to_end": end_to_end,
        "bottleneck": results.get("bottleneck"),
        "cost": cost,
        "components": components,
        "meta": results.get("meta"),
        "connectors": results.get("connectors") or {},
    }


def run_payload(run: SimulationRun) -> SimulationRunPayload:
    parameters = run.parameters or {}
    return {
        "id": str(run.pk),
        "board": str(run.board_id),
        "room": str(run.board.room_id),
        "status": run.status,
        "started_by": user_payload(run.started_by),
        "cancelled_by": user_payload(run.cancelled_by),
        "label": parameters.get("label", ""),
        "seed": run.seed,
        "duration_s": run.duration_s,
        "speed": parameters.get("speed"),
        "max_requests": parameters.get("max_requests", 0),
        "board_sequence": run.board_sequence,
        "faults": run.faults,
        "progress": run.progress,
        "summary": run.summary,
        "error": run.error,
        "created_at": run.created_at.isoformat(),
        "started_at": _dt(run.started_at),
        "finished_at": _dt(run.finished_at),
    }


def run_detail_payload(run: SimulationRun) -> SimulationRunDetailPayload:
    return {**run_payload(run), "design": run.design, "results": run.results}
