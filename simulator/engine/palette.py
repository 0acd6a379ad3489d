"""The component palette: every kind a design may use, its parameters (type, default, bounds, help) and its price.

The UI renders the palette from `palette_json()`; `design.validate` checks parameters against the same specs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Number = int | float


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str  # "int" | "float" | "bool" | "choice"
    default: Any
    min: Number | None = None
    max: Number | None = None
    help: str = ""
    unit: str = ""
    choices: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "default": self.default, "help": self.help}
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.unit:
            out["unit"] = self.unit
        if self.choices:
            out["choices"] = list(self.choices)
        return out


@dataclass(frozen=True)
class KindSpec:
    kind: str
    label: str
    description: str
    params: tuple[ParamSpec, ...]
    # Price table: per instance (node, worker) hour, and per million requests handled.
    hourly: float = 0.0
    per_million: float = 0.0
    role: str = "component"  # "entry" for client populations
    param_map: dict[str, ParamSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "param_map", {p.name: p for p in self.params})

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "description": self.description,
            "role": self.role,
            "params": [p.to_json() for p in self.params],
            "price": {"hourly": self.hourly, "per_million_requests": self.per_million},
        }


def _f(
    name: str, default: float, lo: float | None = 0.0, hi: float | None = None, help: str = "", unit: str = ""
) -> ParamSpec:
    return ParamSpec(name, "float", default, lo, hi, help, unit)


def _i(name: str, default: int, lo: int | None = 0, hi: int | None = None, help: str = "", unit: str = "") -> ParamSpec:
    return ParamSpec(name, "int", default, lo, hi, help, unit)


def _c(name: str, default: str, choices: tuple[str, ...], help: str = "") -> ParamSpec:
    return ParamSpec(name, "choice", default, help=help, choices=choices)


def _b(name: str, default: bool, help: str = "") -> ParamSpec:
    return ParamSpec(name, "bool", default, help=help)


DISTRIBUTIONS = ("exponential", "constant", "lognormal")
PATTERNS = ("constant", "ramp", "spike", "diurnal")
ROUTES = ("read", "write", "miss", "any")

_SERVICE_TIME = (
    _c("service_dist", "exponential", DISTRIBUTIONS, "service time distribution"),
    _f("service_ms", 20.0, 0.001, 600_000, "mean service time of one request on one worker", "ms"),
    _f("service_cv", 1.0, 0.0, 10.0, "coefficient of variation (lognormal only; exponential is 1, constant 0)"),
)

_KINDS = [
    KindSpec(
        "client",
        "Client population",
        "Where requests come from: an open-loop arrival process (Poisson) whose rate follows a pattern.",
        (
            _f("rate", 100.0, 0.0, 10_000_000, "requests per second (the pattern's base or peak rate)", "rps"),
            _c("pattern", "constant", PATTERNS, "traffic pattern"),
            _f("ramp_from", 0.0, 0.0, 10_000_000, "ramp: rate at t=0 (it reaches `rate` at ramp_s)", "rps"),
            _f("ramp_s", 60.0, 0.001, None, "ramp: seconds to reach `rate`", "s"),
            _f("spike_at_s", 20.0, 0.0, None, "spike: when the spike starts", "s"),
            _f("spike_s", 10.0, 0.001, None, "spike: how long it lasts", "s"),
            _f("spike_multiplier", 5.0, 1.0, 1000, "spike: rate multiplier during the spike"),
            _f("diurnal_period_s", 60.0, 0.001, None, "diurnal: period of the daily cycle (compressed)", "s"),
            _f("diurnal_amplitude", 0.5, 0.0, 1.0, "diurnal: rate swings between rate×(1−a) and rate×(1+a)"),
            _f("read_ratio", 0.9, 0.0, 1.0, "share of requests that are reads (the rest are writes)"),
        ),
        role="entry",
    ),
    KindSpec(
        "dns",
        "DNS",
        "Name resolution: a lookup latency for requests the client has not cached.",
        (
            _f("latency_ms", 20.0, 0.0, 60_000, "lookup latency", "ms"),
            _f("cached_ratio", 0.9, 0.0, 1.0, "share of requests resolved from the client's cache (no lookup)"),
        ),
        per_million=0.4,
    ),
    KindSpec(
        "cdn",
        "CDN",
        "Edge cache: hits are answered at the edge, misses go on to the origin (its `miss` connectors).",
        (
            _f("hit_ratio", 0.9, 0.0, 1.0, "share of reads answered at the edge"),
            _f("latency_ms", 15.0, 0.0, 60_000, "edge latency", "ms"),
        ),
        per_million=0.75,
    ),
    KindSpec(
        "load_balancer",
        "Load balancer",
        "Spreads requests over the instances of the service behind it.",
        (
            _c("algorithm", "round_robin", ("round_robin", "least_connections"), "how instances are chosen"),
            _f("latency_ms", 0.5, 0.0, 60_000, "added latency", "ms"),
        ),
        hourly=0.025,
        per_million=0.008,
    ),
    KindSpec(
        "api_gateway",
        "API gateway",
        "Authentication and rate limiting in front of the services (fixed one-second window).",
        (
            _f("rate_limit_rps", 0.0, 0.0, 10_000_000, "requests per second let through (0: no limit)", "rps"),
            _f("latency_ms", 2.0, 0.0, 60_000, "added latency", "ms"),
        ),
        per_million=1.0,
    ),
    KindSpec(
        "service",
        "Application service",
        "Instances × concurrency workers with one FIFO queue per instance pool; calls its dependencies with a "
        "timeout and retries with exponential back-off; optional autoscaling.",
        (
            _i("instances", 2, 1, 10_000, "instances (initial instances when autoscaling)"),
            _i("concurrency", 8, 1, 100_000, "requests one instance serves at once (threads, workers)"),
            *_SERVICE_TIME,
            _i(
                "queue_limit",
                1000,
                0,
                10_000_000,
                "requests waiting per instance before new ones are dropped (0: no limit)",
            ),
            _f("timeout_ms", 2000.0, 0.0, 3_600_000, "timeout of each call to the dependencies (0: none)", "ms"),
            _i("retries", 2, 0, 20, "retries of a failed or timed-out dependency call"),
            _f(
                "backoff_ms",
                100.0,
                0.0,
                600_000,
                "back-off before the first retry (doubles each time, ±50 % jitter)",
                "ms",
            ),
            _f("backoff_multiplier", 2.0, 1.0, 10.0, "back-off growth per retry"),
            _b("autoscale", False, "scale instances on utilisation"),
            _i("min_instances", 1, 1, 10_000, "autoscaling: fewest instances"),
            _i("max_instances", 10, 1, 10_000, "autoscaling: most instances"),
            _f("target_utilisation", 0.6, 0.05, 1.0, "autoscaling: utilisation it aims for"),
            _f("scale_up_delay_s", 10.0, 0.0, 3600, "autoscaling: time for a new instance to start serving", "s"),
            _f("scale_interval_s", 5.0, 0.1, 3600, "autoscaling: how often utilisation is evaluated", "s"),
        ),
        hourly=0.10,
    ),
    KindSpec(
        "cache",
        "Cache",
        "In-memory cache (Redis-like, one thread): read hits are answered here, misses and writes go on "
        "(its `miss` connectors).",
        (
            _f("hit_ratio", 0.8, 0.0, 1.0, "share of reads found in the cache"),
            _f("latency_ms", 1.0, 0.0, 60_000, "round-trip latency", "ms"),
            _f("capacity_ops", 100_000.0, 1.0, 100_000_000, "operations per second it can serve", "ops/s"),
        ),
        hourly=0.068,
    ),
    KindSpec(
        "database",
        "Database",
        "A primary and read replicas, each with a connection pool (one query per connection). Writes go to "
        "the primary, reads to the replicas (or the primary when there are none).",
        (
            _i("read_replicas", 0, 0, 100, "read replicas"),
            _b("reads_from_replicas", True, "send reads to the replicas when there are any"),
            _c("service_dist", "exponential", DISTRIBUTIONS, "query time distribution"),
            _f("read_ms", 5.0, 0.001, 600_000, "mean read query time", "ms"),
            _f("write_ms", 10.0, 0.001, 600_000, "mean write query time", "ms"),
            _f("service_cv", 1.0, 0.0, 10.0, "coefficient of variation (lognormal only)"),
            _i("pool_size", 20, 1, 100_000, "connections per node (queries served at once)"),
            _i(
                "pool_wait_limit",
                500,
                0,
                10_000_000,
                "requests waiting for a connection before the pool refuses (0: no limit)",
            ),
            _f("replication_lag_ms", 100.0, 0.0, 3_600_000, "how far replicas lag behind the primary", "ms"),
        ),
        hourly=0.34,
    ),
    KindSpec(
        "queue",
        "Message queue",
        "A bounded queue with a worker pool: the producer is answered once the message is enqueued; workers "
        "process it later and call what the queue is connected to.",
        (
            _i("capacity", 10_000, 0, 100_000_000, "messages held before new ones are refused (0: no limit)"),
            _i("workers", 4, 1, 100_000, "workers consuming the queue"),
            _c("worker_dist", "exponential", DISTRIBUTIONS, "processing time distribution"),
            _f("worker_ms", 50.0, 0.001, 3_600_000, "mean processing time of a message", "ms"),
            _f("worker_cv", 1.0, 0.0, 10.0, "coefficient of variation (lognormal only)"),
            _f("enqueue_ms", 2.0, 0.0, 60_000, "latency to enqueue (what the producer waits)", "ms"),
        ),
        hourly=0.05,
        per_million=0.40,
    ),
    KindSpec(
        "object_storage",
        "Object storage",
        "S3-like storage: lognormal latency, practically unlimited capacity.",
        (
            _f("latency_ms", 30.0, 0.0, 600_000, "mean latency", "ms"),
            _f("latency_cv", 0.5, 0.0, 10.0, "coefficient of variation of the latency"),
            _f("error_rate", 0.0, 0.0, 1.0, "share of requests that fail"),
        ),
        per_million=0.4,
    ),
    KindSpec(
        "external_api",
        "External API",
        "A third-party dependency: lognormal latency and an error rate.",
        (
            _f("latency_ms", 100.0, 0.0, 600_000, "mean latency", "ms"),
            _f("latency_cv", 0.5, 0.0, 10.0, "coefficient of variation of the latency"),
            _f("error_rate", 0.01, 0.0, 1.0, "share of requests that fail"),
        ),
        per_million=5.0,
    ),
]

PALETTE: dict[str, KindSpec] = {k.kind: k for k in _KINDS}

# Kinds whose read hits end the request (their `miss` connectors carry the rest).
CACHING_KINDS = frozenset({"cache", "cdn"})


def palette_json() -> dict[str, Any]:
    """The palette as plain JSON: kinds in display order, connector parameters, fault kinds."""
    return {
        "kinds": [k.to_json() for k in _KINDS],
        "connector_params": [
            ParamSpec(
                "weight", "float", 1.0, 0.0, None, "share of the traffic this connector gets among its siblings"
            ).to_json(),
            ParamSpec(
                "route",
                "choice",
                "any",
                help="which requests take it: reads, writes, cache misses or any",
                choices=ROUTES,
            ).to_json(),
        ],
        "faults": [
            {"kind": "kill", "help": "stop `count` instances (service instances, database replicas, queue workers)"},
            {"kind": "latency", "help": "add `latency_ms` to every request through the component"},
            {"kind": "error", "help": "make `error_rate` of the requests through the component fail"},
            {"kind": "slow", "help": "multiply the component's service time by `factor`"},
            {"kind": "partition", "help": "cut a cache or CDN off: its hit ratio drops to 0"},
        ],
    }
