"""The simulation: requests flowing through a design, station by station, in simulated-time steps.

How it works
------------
Requests are *flows* held in numpy arrays (request id, read/write, the guarding service, the attempt). Time
advances in steps (`step_s`, 0.25 s by default, also cut at fault, autoscaling and progress times). In each step
the clients generate their arrivals (non-homogeneous Poisson by thinning) and every component, in topological
order, takes the flows that reach it before the step ends and serves them as one batch: FIFO stations with c
servers and a bounded queue (`stations.FifoStation`: vectorised where nobody waits, a heap recursion where they
do), infinite-server delays (latency only) in one numpy expression. A flow's departure is known as soon as its
arrival is processed, so downstream components receive it in the same step (or a later one) in time order.
Edges leaving a queue and retries may go "backwards" in that order: they are processed in the next step at
their own time (at most `step_s` late in the processing order, never in their timestamps).

Semantics (documented for the UI)
---------------------------------
- A component's sojourn is its wait + service (+ added latency). A request's latency is the sum over its path;
  a read hit at a cache/CDN ends it; a component with no eligible connector ends it (route: reads take `read`
  and `any` connectors, writes `write` and `any`; `miss` connectors carry what a cache did not answer); among
  eligible connectors one is chosen by weight.
- A service with a timeout or retries *guards* the rest of the path: if the rest fails (a drop, an error, a
  refusal) or takes longer than `timeout_ms`, the service retries it after `backoff_ms × multiplier^attempt`
  (±50 % jitter) up to `retries` times, else the request fails. The abandoned attempt keeps consuming the
  components it is queued at (wasted work: that is what makes retry storms). Only the innermost guard retries.
- A queue answers its producer once the message is enqueued; the workers then carry the message on as an
  asynchronous job (job figures are separate from request figures).
- Live faults: `Simulation.inject(fault)` between `step_until` calls, or return faults from the `progress`
  callback of `simulate`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import analysis
from .design import Design, DesignError, Problem, errors, validate
from .faults import Fault, check_fault
from .palette import CACHING_KINDS, PALETTE
from .stations import FifoStation, LogHistogram, draw

__all__ = ["Fault", "Results", "Simulation", "Snapshot", "simulate"]

QS = (50.0, 95.0, 99.0)
CAUSES = ("dropped", "rate_limited", "pool_exhausted", "queue_full", "unavailable", "error", "timeout")
C_DROPPED, C_RATE, C_POOL, C_QFULL, C_UNAVAIL, C_ERROR, C_TIMEOUT = range(7)
QUEUEING_KINDS = frozenset({"service", "database", "cache", "queue"})
DOWNABLE_KINDS = frozenset({"dns", "load_balancer", "api_gateway", "object_storage", "external_api"})


def _r(x: float | None, nd: int = 3) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), nd)


def _ms(x: float | None) -> float | None:
    return None if x is None else _r(x * 1000.0, 6)


class _Flows:
    """Per-flow state, grown by doubling."""

    def __init__(self, capacity: int):
        self.n = 0
        self.req = np.zeros(capacity, np.int64)
        self.write = np.zeros(capacity, bool)
        self.guard = np.full(capacity, -1, np.int32)
        self.call = np.zeros(capacity)
        self.attempt = np.zeros(capacity, np.int16)
        self.dead = np.zeros(capacity, bool)
        self.job = np.zeros(capacity, bool)
        self.born = np.zeros(capacity)  # when a job was enqueued

    def new(self, k: int) -> np.ndarray:
        if self.n + k > len(self.req):
            size = max(2 * len(self.req), self.n + k)
            for name in ("req", "write", "guard", "call", "attempt", "dead", "job", "born"):
                old = getattr(self, name)
                grown = np.zeros(size, old.dtype) if name != "guard" else np.full(size, -1, old.dtype)
                grown[: self.n] = old[: self.n]
                setattr(self, name, grown)
        ids = np.arange(self.n, self.n + k)
        self.n += k
        return ids


class _Requests:
    def __init__(self, capacity: int):
        self.n = 0
        self.t0 = np.zeros(capacity)
        self.done = np.full(capacity, np.nan)
        self.status = np.zeros(capacity, np.int8)  # 0 in flight, 1 ok, 2 failed
        self.cause = np.full(capacity, -1, np.int8)

    def new(self, k: int) -> np.ndarray:
        if self.n + k > len(self.t0):
            size = max(2 * len(self.t0), self.n + k)
            for name, fill in (("t0", 0.0), ("done", np.nan), ("status", 0), ("cause", -1)):
                old = getattr(self, name)
                grown = np.full(size, fill, old.dtype)
                grown[: self.n] = old[: self.n]
                setattr(self, name, grown)
        ids = np.arange(self.n, self.n + k)
        self.n += k
        return ids


class _Grid:
    """Counts of events in fine time bins (pps per simulated second): the number in system, in service and in
    queue are sampled on this grid (an estimate independent of the sojourn sums, hence a real Little's-law check)."""

    def __init__(self, duration: float, pps: int):
        self.pps = pps
        self.size = int(math.ceil(duration * pps)) + 1
        self.arr = np.zeros(self.size)
        self.dep = np.zeros(self.size)
        self.start = np.zeros(self.size)
        self.end = np.zeros(self.size)

    def add(self, which: np.ndarray, times: np.ndarray) -> None:
        if not len(times):
            return
        idx = (times * self.pps).astype(np.int64)
        idx = idx[idx < self.size]
        if not len(idx):
            return
        lo = int(idx.min())
        counts = np.bincount(idx - lo)
        which[lo : lo + len(counts)] += counts


@dataclass
class _Comp:
    idx: int
    id: str
    kind: str
    p: dict[str, Any]
    rng: np.random.Generator
    inbox: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    nodes: list[FifoStation] = field(default_factory=list)
    servers_per_node: int = 0
    instances: int = 0  # running instances / workers / nodes, what the cost and the UI show
    rr_counter: int = 0
    killed: int = 0
    # rate limiter (fixed one-second window)
    rl_sec: int = -1
    rl_count: int = 0
    # counters
    arrivals: int = 0
    accepted: int = 0
    completed: int = 0
    drops: int = 0
    errors: int = 0
    timeouts: int = 0
    retries: int = 0
    hits: int = 0
    sojourn_sum: float = 0.0
    sojourn_in_run: float = 0.0  # the same, counted only up to the end of the run (for Little's law)
    wait_sum: float = 0.0
    work_sum: float = 0.0
    busy_sum: float = 0.0  # server-seconds of service within [0, duration]
    served: int = 0
    drop_causes: dict[str, int] = field(default_factory=dict)
    node_busy: dict[int, float] = field(default_factory=dict)  # database: busy server-seconds per node
    node_sec: dict[int, np.ndarray] = field(default_factory=dict)  # the same per second
    hist: LogHistogram = field(default_factory=LogHistogram)
    hist_at_snapshot: np.ndarray | None = None
    # autoscaling
    pending: list[tuple[float, int]] = field(default_factory=list)
    next_eval: float = math.inf
    work_since_eval: float = 0.0
    instance_log: list[tuple[float, int]] = field(default_factory=list)
    # per second
    grid: _Grid | None = None
    sec_drops: np.ndarray | None = None
    sec_errors: np.ndarray | None = None
    sec_work: np.ndarray | None = None
    sec_server_s: np.ndarray | None = None
    sec_instance_s: np.ndarray | None = None
    sec_arrivals: np.ndarray | None = None
    first_drop: dict[str, float] = field(default_factory=dict)
    # effective parameters for the current step (faults applied)
    extra_latency: float = 0.0
    error_rate: float = 0.0
    slow: float = 1.0
    partitioned: bool = False


@dataclass
class Snapshot:
    """Live figures at simulated time `t` over the last interval (`interval_s`), plus running totals."""

    t: float
    interval_s: float
    components: dict[str, dict[str, Any]]
    end_to_end: dict[str, Any]
    totals: dict[str, Any]
    faults: list[dict[str, Any]]
    connectors: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "t": _r(self.t),
            "interval_s": _r(self.interval_s),
            "components": self.components,
            "connectors": self.connectors,
            "end_to_end": self.end_to_end,
            "totals": self.totals,
            "faults": self.faults,
        }


@dataclass
class Results:
    meta: dict[str, Any]
    components: dict[str, dict[str, Any]]
    end_to_end: dict[str, Any]
    jobs: dict[str, Any]
    time_series: dict[str, Any]
    bottleneck: dict[str, Any]
    headroom: list[dict[str, Any]]
    cost: dict[str, Any]
    faults: list[dict[str, Any]]
    connectors: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "components": self.components,
            "connectors": self.connectors,
            "end_to_end": self.end_to_end,
            "jobs": self.jobs,
            "time_series": self.time_series,
            "bottleneck": self.bottleneck,
            "headroom": self.headroom,
            "cost": self.cost,
            "faults": self.faults,
        }


class Simulation:
    """One run of a design. Drive it with `step_until(t)`; `inject(fault)` at any point between steps; read
    `snapshot()` for live figures and `results()` at the end. `simulate()` wraps this loop.

    `step_s` is the processing step (smaller: live faults and feedback land closer to their time; larger:
    faster). `points_per_second` sets the sampling grid of queue lengths and utilisation."""

    def __init__(
        self,
        design: Design,
        *,
        seed: int,
        duration_s: float,
        faults: Iterable[Fault] = (),
        max_requests: int | None = None,
        step_s: float = 0.25,
        points_per_second: int | None = None,
    ):
        problems = validate(design)
        if errors(problems):
            raise DesignError(errors(problems))
        if not duration_s > 0:
            raise ValueError("duration_s must be positive")
        self.design = design
        self.seed = int(seed)
        self.duration = float(duration_s)
        self.step = float(step_s)
        self.max_requests = max_requests
        self.now = 0.0
        self.stopped = False
        self.faults: list[Fault] = []
        self._kinds = {c.id: c.kind for c in design.components}
        pps = points_per_second or max(1, min(1000, int(20000 / self.duration)))
        self._pps = pps
        nsec = int(math.ceil(self.duration)) + 1
        self._nsec = nsec
        self.comps: list[_Comp] = []
        self.by_id: dict[str, _Comp] = {}
        for i, c in enumerate(design.components):
            params = {**PALETTE[c.kind].defaults(), **c.params}
            comp = _Comp(i, c.id, c.kind, params, np.random.default_rng([self.seed, i]))
            comp.grid = _Grid(self.duration, pps)
            for name in ("sec_drops", "sec_errors", "sec_work", "sec_server_s", "sec_instance_s", "sec_arrivals"):
                setattr(comp, name, np.zeros(nsec))
            self.comps.append(comp)
            self.by_id[c.id] = comp
        self.order = [self.by_id[i] for i in analysis.topological_order(design)]
        self._routing(design)
        self._build_stations(design)
        expected = sum(analysis.peak_rate(c) for c in design.components if c.kind == "client") * self.duration
        # Arrays start at the expected size (at most 2**20) and double as needed: about 100 bytes per request.
        cap = int(min(expected * 1.3 + 1024, max_requests + 1024 if max_requests else math.inf, 1 << 20))
        self.flows = _Flows(cap)
        self.reqs = _Requests(cap)
        self.e2e = LogHistogram()
        self._e2e_at_snapshot = np.zeros_like(self.e2e.counts)
        self.jobs_hist = LogHistogram()
        self.jobs_done = 0
        self.jobs_failed = 0
        self.visits = 0
        self._last_snap_t = 0.0
        self._last_counts: dict[str, tuple[int, int, int, int, int]] = {}
        self._recent_done: list[tuple[np.ndarray, np.ndarray]] = []
        self._e2e_recent_ok = 0
        self._e2e_recent_fail = 0
        self._kill_events: list[tuple[float, int, str, int]] = []  # (time, seq, component, delta)
        for f in faults:
            self.inject(f)

    # ----------------------------------------------------------------- set-up

    def _routing(self, design: Design) -> None:
        # For each component and class: the eligible connectors (as analysis.routing picks them), their
        # targets and cumulative probabilities.
        self._route: list[dict[str, tuple[np.ndarray, np.ndarray, list[int]]]] = []
        self.conn_ids = [k.id for k in design.connectors]
        self.conn_flows = np.zeros(len(design.connectors), np.int64)
        self.conn_sec = np.zeros((len(design.connectors), self._nsec))
        self._conn_at_snapshot = np.zeros(len(design.connectors), np.int64)
        for comp in self.comps:
            entry = {}
            for cls in ("read", "write"):
                eligible = [
                    (j, k)
                    for j, k in enumerate(design.connectors)
                    if k.source == comp.id and k.route in ("any", "miss", cls) and float(k.weight) > 0
                ]
                total = sum(float(k.weight) for _, k in eligible)
                targets = np.array([self.by_id[k.target].idx for _, k in eligible], np.int64)
                cum = np.cumsum([float(k.weight) / total for _, k in eligible]) if eligible else np.zeros(0)
                if len(cum):
                    cum[-1] = 1.0
                entry[cls] = (targets, cum, [j for j, _ in eligible])
            self._route.append(entry)
        # A service behind a round-robin load balancer keeps one queue per instance; otherwise one shared
        # queue (least connections behaves close to it).
        self._rr = set()
        for k in design.connectors:
            src = self.by_id[k.source]
            if src.kind == "load_balancer" and src.p["algorithm"] == "round_robin":
                self._rr.add(k.target)

    def _build_stations(self, design: Design) -> None:
        for comp in self.comps:
            p = comp.p
            if comp.kind == "service":
                n = int(p["instances"])
                if p["autoscale"]:
                    n = min(max(n, int(p["min_instances"])), int(p["max_instances"]))
                    comp.next_eval = float(p["scale_interval_s"])
                comp.servers_per_node = int(p["concurrency"])
                limit = int(p["queue_limit"])
                if comp.id in self._rr:
                    comp.nodes = [FifoStation(comp.servers_per_node, limit) for _ in range(n)]
                else:
                    comp.nodes = [FifoStation(n * comp.servers_per_node, limit * n)]
                comp.instances = n
            elif comp.kind == "database":
                comp.servers_per_node = int(p["pool_size"])
                comp.instances = 1 + int(p["read_replicas"])
                comp.nodes = [
                    FifoStation(comp.servers_per_node, int(p["pool_wait_limit"])) for _ in range(comp.instances)
                ]
            elif comp.kind == "cache":
                comp.servers_per_node = 1
                comp.instances = 1
                comp.nodes = [FifoStation(1, 0)]
            elif comp.kind == "queue":
                comp.servers_per_node = int(p["workers"])
                comp.instances = int(p["workers"])
                comp.nodes = [FifoStation(comp.instances, int(p["capacity"]))]
            elif comp.kind != "client":
                comp.instances = 1
            comp.instance_log.append((0.0, comp.instances))

    # ----------------------------------------------------------------- faults

    def inject(self, fault: Fault) -> None:
        """Add a fault; one that starts in the past starts now."""
        why = check_fault(fault, self._kinds)
        if why:
            raise DesignError([Problem(fault.component_id, None, "invalid_fault", why)])
        if fault.at_s < self.now:
            until = fault.until_s
            if until is not None and until <= self.now:
                return
            fault = Fault(**{**fault.__dict__, "at_s": self.now})
        self.faults.append(fault)
        if fault.kind == "kill":
            seq = len(self._kill_events)
            self._kill_events.append((fault.at_s, seq, fault.component_id, fault.count))
            if fault.until_s is not None:
                self._kill_events.append((fault.until_s, seq + 1, fault.component_id, -fault.count))
            self._kill_events.sort()

    def _apply_faults(self, t: float) -> None:
        for comp in self.comps:
            comp.extra_latency = 0.0
            comp.error_rate = 0.0
            comp.slow = 1.0
            comp.partitioned = False
        for f in self.faults:
            if not f.active(t):
                continue
            comp = self.by_id[f.component_id]
            if f.kind == "latency":
                comp.extra_latency += f.latency_ms / 1000.0
            elif f.kind == "error":
                comp.error_rate = 1.0 - (1.0 - comp.error_rate) * (1.0 - f.error_rate)
            elif f.kind == "slow":
                comp.slow *= f.factor
            elif f.kind == "partition":
                comp.partitioned = True
        for comp in self.comps:
            if comp.kind in CACHING_KINDS and comp.killed > 0:
                comp.partitioned = True
        while self._kill_events and self._kill_events[0][0] <= t:
            _, _, cid, delta = self._kill_events.pop(0)
            comp = self.by_id[cid]
            comp.killed = max(0, comp.killed + delta)
            if comp.kind == "service":
                self._set_instances(comp, comp.instances - delta, t)
            elif comp.kind == "queue":
                base = int(comp.p["workers"])
                comp.instances = max(0, base - comp.killed)
                comp.nodes[0].resize(comp.instances, t)
                comp.instance_log.append((t, comp.instances))
            elif comp.kind == "database":
                comp.instances = max(0, 1 + int(comp.p["read_replicas"]) - comp.killed)
                comp.instance_log.append((t, comp.instances))
            if comp.kind in CACHING_KINDS:
                comp.partitioned = comp.killed > 0 or comp.partitioned

    def _set_instances(self, comp: _Comp, n: int, t: float) -> None:
        n = max(0, n)
        if comp.id in self._rr:
            limit = int(comp.p["queue_limit"])
            while len(comp.nodes) < n:
                comp.nodes.append(FifoStation(comp.servers_per_node, limit, t))
            del comp.nodes[n:]
        else:
            comp.nodes[0].resize(n * comp.servers_per_node, t)
            comp.nodes[0].limit = int(comp.p["queue_limit"]) * max(n, 1)
        comp.instances = n
        comp.instance_log.append((t, n))

    def _autoscale(self, t: float) -> None:
        for comp in self.comps:
            if comp.kind != "service" or not comp.p["autoscale"]:
                continue
            ready = [(rt, k) for rt, k in comp.pending if rt <= t]
            if ready:
                comp.pending = [(rt, k) for rt, k in comp.pending if rt > t]
                self._set_instances(
                    comp, min(comp.instances + sum(k for _, k in ready), int(comp.p["max_instances"])), t
                )
            if t + 1e-12 < comp.next_eval:
                continue
            interval = float(comp.p["scale_interval_s"])
            comp.next_eval = t + interval
            servers = max(comp.instances, 1) * comp.servers_per_node
            load = comp.work_since_eval / (servers * interval)
            comp.work_since_eval = 0.0
            target = float(comp.p["target_utilisation"])
            desired = math.ceil(max(comp.instances, 1) * load / target - 1e-9)
            desired = min(max(desired, int(comp.p["min_instances"])), int(comp.p["max_instances"]))
            coming = sum(k for _, k in comp.pending)
            if desired > comp.instances + coming:
                comp.pending.append((t + float(comp.p["scale_up_delay_s"]), desired - comp.instances - coming))
            elif desired < comp.instances and not coming:
                self._set_instances(comp, desired, t)

    # ----------------------------------------------------------------- flows

    def _fail(self, ids: np.ndarray, t: np.ndarray, cause: int) -> None:
        """Flows that failed at times t: their guard retries them or their request fails."""
        if not len(ids):
            return
        fl = self.flows
        live = ~fl.dead[ids]
        ids, t = ids[live], t[live]
        if not len(ids):
            return
        fl.dead[ids] = True
        jobs = fl.job[ids]
        if jobs.any():
            self.jobs_failed += int(jobs.sum())
            ids, t = ids[~jobs], t[~jobs]
        g = fl.guard[ids]
        has = g >= 0
        retry = np.zeros(len(ids), bool)
        if has.any():
            lim = self._retry_limit[np.where(has, g, 0)]
            retry = has & (fl.attempt[ids] < lim)
        if retry.any():
            rid, rt, rg = ids[retry], t[retry], g[retry]
            for gi in np.unique(rg):
                sel = rg == gi
                guard = self.comps[int(gi)]
                old = rid[sel]
                att = fl.attempt[old].astype(np.float64)
                base = float(guard.p["backoff_ms"]) / 1000.0 * float(guard.p["backoff_multiplier"]) ** att
                when = rt[sel] + base * guard.rng.uniform(0.5, 1.5, len(old))
                new = fl.new(len(old))
                fl.req[new] = fl.req[old]
                fl.write[new] = fl.write[old]
                fl.guard[new] = gi
                fl.attempt[new] = fl.attempt[old] + 1
                fl.call[new] = when
                guard.retries += len(old)
                order = np.argsort(when, kind="stable")
                self._route_out(guard, new[order], when[order])
        rest = ~retry
        if rest.any():
            rq = fl.req[ids[rest]]
            pending = self.reqs.status[rq] == 0
            rq = rq[pending]
            self.reqs.status[rq] = 2
            self.reqs.done[rq] = t[rest][pending]
            self.reqs.cause[rq] = cause
            self._e2e_recent_fail += len(rq)

    def _complete(self, ids: np.ndarray, t: np.ndarray) -> None:
        if not len(ids):
            return
        fl = self.flows
        live = ~fl.dead[ids]
        ids, t = ids[live], t[live]
        fl.dead[ids] = True
        jobs = fl.job[ids]
        if jobs.any():
            self.jobs_done += int(jobs.sum())
            self.jobs_hist.add(t[jobs] - fl.born[ids[jobs]])
            ids, t = ids[~jobs], t[~jobs]
        rq = fl.req[ids]
        pending = self.reqs.status[rq] == 0
        rq, t = rq[pending], t[pending]
        self.reqs.status[rq] = 1
        self.reqs.done[rq] = t
        lat = t - self.reqs.t0[rq]
        self.e2e.add(lat)
        self._e2e_recent_ok += len(rq)

    def _timeouts(self, ids: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Fail the flows whose guard's timeout has passed by time t; returns the mask of those."""
        fl = self.flows
        g = fl.guard[ids]
        has = (g >= 0) & ~fl.dead[ids]
        if not has.any():
            return np.zeros(len(ids), bool)
        deadline = fl.call[ids] + self._timeout[np.where(has, g, 0)]
        late = has & (t > deadline)
        if late.any():
            for gi in np.unique(g[late]):
                self.comps[int(gi)].timeouts += int(np.count_nonzero(g[late] == gi))
            self._fail(ids[late], deadline[late], C_TIMEOUT)
        return late

    def _route_out(self, comp: _Comp, ids: np.ndarray, t: np.ndarray) -> None:
        """Send flows leaving `comp` at times t (sorted) to their next component, or complete them."""
        if not len(ids):
            return
        routes = self._route[comp.idx]
        w = self.flows.write[ids]
        for cls, mask in (("read", ~w), ("write", w)):
            if not mask.any():
                continue
            sid, st = ids[mask], t[mask]
            targets, cum, conns = routes[cls]
            if len(targets) == 0:
                self._complete(sid, st)
            elif len(targets) == 1:
                self.comps[int(targets[0])].inbox.append((sid, st))
                self.conn_flows[conns[0]] += len(sid)
                self._per_second(self.conn_sec[conns[0]], st)
            else:
                pick = np.searchsorted(cum, comp.rng.random(len(sid)), side="right")
                pick = np.minimum(pick, len(targets) - 1)
                for j, target in enumerate(targets):
                    sel = pick == j
                    if sel.any():
                        self.comps[int(target)].inbox.append((sid[sel], st[sel]))
                        self.conn_flows[conns[j]] += int(np.count_nonzero(sel))
                        self._per_second(self.conn_sec[conns[j]], st[sel])

    # ----------------------------------------------------------------- stepping

    def _boundaries(self, target: float) -> float:
        t = self.now
        nxt = min(target, (math.floor(t / self.step + 1e-9) + 1) * self.step)
        for f in self.faults:
            for b in (f.at_s, f.until_s):
                if b is not None and t < b < nxt:
                    nxt = b
        for comp in self.comps:
            if t < comp.next_eval < nxt:
                nxt = comp.next_eval
            for rt, _ in comp.pending:
                if t < rt < nxt:
                    nxt = rt
        return nxt

    def step_until(self, t: float) -> None:
        """Advance the simulation to simulated time t (at most the duration)."""
        t = min(t, self.duration)
        while self.now < t - 1e-12 and not self.stopped:
            t1 = self._boundaries(t)
            self._apply_faults(self.now)
            self._autoscale(self.now)
            self._step(self.now, t1)
            self.now = t1

    def _account_servers(self, t0: float, t1: float) -> None:
        for comp in self.comps:
            if comp.kind == "client":
                continue
            servers = sum(n.servers for n in comp.nodes) if comp.nodes else 0
            s = int(t0)
            while s < t1 and s < self._nsec:
                a, b = max(t0, s), min(t1, s + 1)
                assert comp.sec_server_s is not None and comp.sec_instance_s is not None
                comp.sec_server_s[s] += servers * (b - a)
                comp.sec_instance_s[s] += comp.instances * (b - a)
                s += 1

    def _step(self, t0: float, t1: float) -> None:
        self._account_servers(t0, t1)
        for comp in self.order:
            if comp.kind == "client":
                self._generate(comp, t0, t1)
                continue
            if not comp.inbox:
                continue
            ids_l, t_l = zip(*comp.inbox, strict=True)
            ids = np.concatenate(ids_l)
            ts = np.concatenate(t_l)
            now_mask = ts < t1
            if not now_mask.all():
                comp.inbox = [(ids[~now_mask], ts[~now_mask])]
                ids, ts = ids[now_mask], ts[now_mask]
            else:
                comp.inbox = []
            if not len(ids):
                continue
            order = np.argsort(ts, kind="stable")
            self._process(comp, ids[order], ts[order])

    def _rate(self, comp: _Comp, t: np.ndarray | float) -> np.ndarray | float:
        p = comp.p
        rate = float(p["rate"])
        pattern = p["pattern"]
        if pattern == "ramp":
            frm, ramp = float(p["ramp_from"]), float(p["ramp_s"])
            return frm + (rate - frm) * np.minimum(np.asarray(t) / ramp, 1.0)
        if pattern == "spike":
            at, length, mult = float(p["spike_at_s"]), float(p["spike_s"]), float(p["spike_multiplier"])
            tt = np.asarray(t)
            return np.where((tt >= at) & (tt < at + length), rate * mult, rate)
        if pattern == "diurnal":
            per, amp = float(p["diurnal_period_s"]), float(p["diurnal_amplitude"])
            return rate * (1.0 + amp * np.sin(2 * np.pi * np.asarray(t) / per))
        return rate if np.isscalar(t) else np.full(np.shape(t), rate)

    def _generate(self, comp: _Comp, t0: float, t1: float) -> None:
        lam_max = analysis.peak_rate(self.design.component(comp.id))
        if lam_max <= 0:
            return
        n = int(comp.rng.poisson(lam_max * (t1 - t0)))
        if self.max_requests is not None:
            n = min(n, max(0, self.max_requests - self.reqs.n))
        if n == 0:
            return
        times = np.sort(comp.rng.uniform(t0, t1, n))
        if comp.p["pattern"] != "constant":
            keep = comp.rng.random(n) * lam_max < self._rate(comp, times)
            times = times[keep]
            n = len(times)
            if n == 0:
                return
        rq = self.reqs.new(n)
        self.reqs.t0[rq] = times
        ids = self.flows.new(n)
        fl = self.flows
        fl.req[ids] = rq
        fl.write[ids] = comp.rng.random(n) >= float(comp.p["read_ratio"])
        comp.arrivals += n
        comp.completed += n
        assert comp.sec_arrivals is not None
        self._per_second(comp.sec_arrivals, times)
        self._route_out(comp, ids, times)

    def _per_second(self, arr: np.ndarray, times: np.ndarray, weights: np.ndarray | None = None) -> None:
        if not len(times):
            return
        idx = times.astype(np.int64)
        ok = idx < len(arr)
        if not ok.all():
            idx = idx[ok]
            weights = weights[ok] if weights is not None else None
            if not len(idx):
                return
        lo = int(idx.min())
        counts = np.bincount(idx - lo, weights=weights)
        arr[lo : lo + len(counts)] += counts

    def _refuse(self, comp: _Comp, ids: np.ndarray, t: np.ndarray, cause: int) -> None:
        if not len(ids):
            return
        comp.drops += len(ids)
        name = CAUSES[cause]
        comp.drop_causes[name] = comp.drop_causes.get(name, 0) + len(ids)
        comp.first_drop.setdefault(name, float(t[0]))
        assert comp.sec_drops is not None
        self._per_second(comp.sec_drops, t)
        self._fail(ids, t, cause)

    def _process(self, comp: _Comp, ids: np.ndarray, t: np.ndarray) -> None:
        """Serve one batch of flows (sorted by arrival time t) at comp."""
        n = len(ids)
        comp.arrivals += n
        self.visits += n
        assert comp.sec_arrivals is not None and comp.grid is not None
        self._per_second(comp.sec_arrivals, t)
        kind = comp.kind
        p = comp.p
        rng = comp.rng
        fl = self.flows
        write = fl.write[ids]
        start: np.ndarray | None = None
        svc: np.ndarray | None = None

        if kind in DOWNABLE_KINDS and comp.killed > 0:
            self._refuse(comp, ids, t, C_UNAVAIL)
            return
        if kind == "api_gateway" and float(p["rate_limit_rps"]) > 0:
            ok = self._rate_limit(comp, t)
            if not ok.all():
                self._refuse(comp, ids[~ok], t[~ok], C_RATE)
                ids, t, write = ids[ok], t[ok], write[ok]
                if not len(ids):
                    return

        if kind in ("service", "database", "cache", "queue"):
            ids, t, start, svc, dep, write = self._queueing(comp, ids, t, write)
            if not len(ids):
                return
        else:
            if kind == "dns":
                lat = np.where(rng.random(len(ids)) < float(p["cached_ratio"]), 0.0, float(p["latency_ms"]) / 1000)
            elif kind in ("object_storage", "external_api"):
                lat = draw(rng, "lognormal", float(p["latency_ms"]) / 1000, float(p["latency_cv"]), len(ids))
            else:
                lat = np.full(len(ids), float(p["latency_ms"]) / 1000)
            dep = t + lat * comp.slow

        if comp.extra_latency:
            dep = dep + comp.extra_latency
        # Metrics of the accepted flows.
        m = len(ids)
        comp.accepted += m
        soj = dep - t
        comp.sojourn_sum += float(soj.sum())
        comp.sojourn_in_run += float((np.minimum(dep, self.duration) - t).sum())
        comp.hist.add(soj)
        comp.completed += m
        grid = comp.grid
        grid.add(grid.arr, t)
        grid.add(grid.dep, dep)
        if start is not None and svc is not None:
            comp.wait_sum += float((start - t).sum())
            grid.add(grid.start, start)
            grid.add(grid.end, start + svc)

        if kind == "queue":
            # The producer is answered at enqueue; the message goes on as a job once a worker is done.
            answered = t + float(p["enqueue_ms"]) / 1000
            live = ~fl.dead[ids] & ~fl.job[ids]
            late = self._timeouts(ids, answered)
            done = live & ~late
            if done.any():
                self._complete_producer(ids[done], answered[done])
            fl.dead[ids[done]] = False
            fl.job[ids[done]] = True
            fl.born[ids[done]] = t[done]
            fl.guard[ids] = -1
        # Failures at departure (error rates).
        if kind != "queue":
            # A guard whose timeout passes before this component answers gives up at its deadline (and may
            # retry); the abandoned flow still goes on (its work is wasted).
            self._timeouts(ids, dep)
        rate = comp.error_rate
        if kind in ("object_storage", "external_api"):
            rate = 1.0 - (1.0 - rate) * (1.0 - float(p["error_rate"]))
        order = None
        if start is not None:
            order = np.argsort(dep, kind="stable")
            ids, dep, write = ids[order], dep[order], write[order]
        if rate > 0:
            bad = rng.random(len(ids)) < rate
            if bad.any():
                comp.errors += int(bad.sum())
                assert comp.sec_errors is not None
                self._per_second(comp.sec_errors, dep[bad])
                self._fail(ids[bad], dep[bad], C_ERROR)
                ids, dep, write = ids[~bad], dep[~bad], write[~bad]
        if kind in CACHING_KINDS:
            hit_ratio = 0.0 if comp.partitioned else float(p["hit_ratio"])
            hit = ~write & (rng.random(len(ids)) < hit_ratio)
            if hit.any():
                comp.hits += int(hit.sum())
                self._complete(ids[hit], dep[hit])
                ids, dep = ids[~hit], dep[~hit]
        if not len(ids):
            return
        if kind == "service" and (float(p["timeout_ms"]) > 0 or int(p["retries"]) > 0):
            fresh = ~fl.dead[ids]
            guarded = ids[fresh]
            fl.guard[guarded] = comp.idx
            fl.call[guarded] = dep[fresh]
            fl.attempt[guarded] = 0
        self._route_out(comp, ids, dep)

    def _complete_producer(self, ids: np.ndarray, t: np.ndarray) -> None:
        rq = self.flows.req[ids]
        pending = self.reqs.status[rq] == 0
        rq, t = rq[pending], t[pending]
        self.reqs.status[rq] = 1
        self.reqs.done[rq] = t
        lat = t - self.reqs.t0[rq]
        self.e2e.add(lat)
        self._e2e_recent_ok += len(rq)

    def _rate_limit(self, comp: _Comp, t: np.ndarray) -> np.ndarray:
        limit = float(comp.p["rate_limit_rps"])
        sec = np.maximum(t.astype(np.int64), comp.rl_sec)
        starts = np.flatnonzero(np.r_[True, sec[1:] != sec[:-1]])
        group_start = np.repeat(starts, np.diff(np.r_[starts, len(sec)]))
        rank = np.arange(len(sec)) - group_start
        rank = rank + np.where(sec == comp.rl_sec, comp.rl_count, 0)
        ok = rank < limit
        last = int(sec[-1])
        in_last = sec == last
        comp.rl_count = int(np.count_nonzero(in_last)) + (comp.rl_count if last == comp.rl_sec else 0)
        comp.rl_sec = last
        return ok

    def _queueing(
        self, comp: _Comp, ids: np.ndarray, t: np.ndarray, write: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """FIFO stations: returns the accepted (ids, arrivals, starts, service times, departures, write)."""
        p = comp.p
        rng = comp.rng
        n = len(ids)
        kind = comp.kind
        cause = C_DROPPED
        if kind == "service":
            svc = draw(rng, p["service_dist"], float(p["service_ms"]) / 1000 * comp.slow, float(p["service_cv"]), n)
            if comp.p["autoscale"]:
                comp.work_since_eval += float(svc.sum())
            node_of = self._dispatch(comp, n)
        elif kind == "database":
            cause = C_POOL
            dist, cv = p["service_dist"], float(p["service_cv"])
            svc = (
                np.where(
                    write,
                    draw(rng, dist, float(p["write_ms"]) / 1000, cv, n),
                    draw(rng, dist, float(p["read_ms"]) / 1000, cv, n),
                )
                * comp.slow
            )
            # Kills take the replicas first, then the primary.
            replicas = len(comp.nodes) - 1
            up_replicas = max(0, replicas - comp.killed)
            primary_up = comp.killed <= replicas
            node_of = np.zeros(n, np.int64)
            reads = np.flatnonzero(~write)
            if up_replicas and p["reads_from_replicas"] and len(reads):
                node_of[reads] = 1 + (comp.rr_counter + np.arange(len(reads))) % up_replicas
                comp.rr_counter += len(reads)
                comp.hits += len(reads)  # for a database: reads served by a replica
            if not primary_up:
                down = node_of == 0
                if down.any():
                    self._refuse(comp, ids[down], t[down], C_UNAVAIL)
                    keep = ~down
                    ids, t, write, svc, node_of = ids[keep], t[keep], write[keep], svc[keep], node_of[keep]
                    n = len(ids)
        elif kind == "cache":
            svc = np.full(n, comp.slow / float(p["capacity_ops"]))
            node_of = None
        else:  # queue
            cause = C_QFULL
            svc = draw(rng, p["worker_dist"], float(p["worker_ms"]) / 1000 * comp.slow, float(p["worker_cv"]), n)
            node_of = None
        work_t = svc
        assert comp.sec_work is not None
        self._per_second(comp.sec_work, t, work_t)
        dep = np.empty(n)
        start = np.empty(n)
        if node_of is None or len(comp.nodes) == 1:
            if comp.nodes and comp.nodes[0].servers > 0:
                dep, start = comp.nodes[0].serve(t, svc)
                if kind == "database":
                    served = ~np.isnan(dep)
                    busy = np.minimum(dep[served], self.duration) - np.minimum(start[served], self.duration)
                    comp.node_busy[0] = comp.node_busy.get(0, 0.0) + float(busy.sum())
                    self._node_second(comp, 0, start[served], busy)
            else:
                dep.fill(np.nan)
                start.fill(np.nan)
        else:
            for j, node in enumerate(comp.nodes):
                sel = np.flatnonzero(node_of == j)
                if len(sel):
                    d, s = node.serve(t[sel], svc[sel])
                    dep[sel] = d
                    start[sel] = s
                    if kind == "database":
                        served = ~np.isnan(d)
                        busy = np.minimum(d[served], self.duration) - np.minimum(s[served], self.duration)
                        comp.node_busy[j] = comp.node_busy.get(j, 0.0) + float(busy.sum())
                        self._node_second(comp, j, s[served], busy)
        refused = np.isnan(dep)
        if refused.any():
            if kind == "service" and comp.instances == 0:
                cause = C_UNAVAIL
            self._refuse(comp, ids[refused], t[refused], cause)
            ok = ~refused
            ids, t, start, svc, dep, write = ids[ok], t[ok], start[ok], svc[ok], dep[ok], write[ok]
        if kind == "cache":
            dep = dep + float(p["latency_ms"]) / 1000
        comp.work_sum += float(svc.sum())
        comp.busy_sum += float((np.minimum(start + svc, self.duration) - np.minimum(start, self.duration)).sum())
        comp.served += len(ids)
        return ids, t, start, svc, dep, write

    def _node_second(self, comp: _Comp, node: int, starts: np.ndarray, busy: np.ndarray) -> None:
        """Busy server-seconds of one database node per second (by the second each query starts)."""
        arr = comp.node_sec.get(node)
        if arr is None:
            arr = comp.node_sec[node] = np.zeros(self._nsec)
        self._per_second(arr, starts, busy)

    def _dispatch(self, comp: _Comp, n: int) -> np.ndarray | None:
        if comp.id not in self._rr or len(comp.nodes) <= 1:
            return None
        k = len(comp.nodes)
        out = (comp.rr_counter + np.arange(n)) % k
        comp.rr_counter = (comp.rr_counter + n) % k
        return out

    @property
    def _retry_limit(self) -> np.ndarray:
        if not hasattr(self, "_retry_limit_cache"):
            self._retry_limit_cache = np.array(
                [int(c.p["retries"]) if c.kind == "service" else 0 for c in self.comps], np.int64
            )
        return self._retry_limit_cache

    @property
    def _timeout(self) -> np.ndarray:
        if not hasattr(self, "_timeout_cache"):
            self._timeout_cache = np.array(
                [
                    float(c.p["timeout_ms"]) / 1000 if c.kind == "service" and float(c.p["timeout_ms"]) > 0 else np.inf
                    for c in self.comps
                ]
            )
        return self._timeout_cache

    # ----------------------------------------------------------------- reporting

    def _occupancy(self, comp: _Comp, upto: int, since: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(number in system, number in service, number waiting) at the grid points since..upto."""
        g = comp.grid
        assert g is not None
        w = slice(since, upto)
        arr, dep, start, end = (np.cumsum(x[w]) for x in (g.arr, g.dep, g.start, g.end))
        if since:
            base = slice(0, since)
            arr += g.arr[base].sum()
            dep += g.dep[base].sum()
            start += g.start[base].sum()
            end += g.end[base].sum()
        return arr - dep, start - end, arr - start

    def snapshot(self) -> Snapshot:
        """Figures over the interval since the previous snapshot (and running totals)."""
        t = self.now
        dt = max(t - self._last_snap_t, 1e-9)
        pps = self._pps
        lo_i, hi_i = int(self._last_snap_t * pps), max(int(t * pps), int(self._last_snap_t * pps) + 1)
        comps: dict[str, dict[str, Any]] = {}
        for comp in self.comps:
            prev = self._last_counts.get(comp.id, (0, 0, 0, 0, 0))
            cur = (comp.arrivals, comp.completed, comp.drops, comp.errors, comp.timeouts)
            self._last_counts[comp.id] = cur
            entry: dict[str, Any] = {
                "arrivals_rps": _r((cur[0] - prev[0]) / dt),
                "throughput_rps": _r((cur[1] - prev[1]) / dt),
                "drops": cur[2] - prev[2],
                "errors": cur[3] - prev[3],
                "timeouts": cur[4] - prev[4],
                "instances": comp.instances,
            }
            if comp.kind != "client":
                in_sys, in_svc, waiting = self._occupancy(comp, hi_i, lo_i)
                window = slice(0, hi_i - lo_i)
                servers = sum(n.servers for n in comp.nodes) if comp.nodes else 0
                entry["in_system"] = _r(float(in_sys[window].mean()) if hi_i > lo_i else 0.0)
                if comp.kind in QUEUEING_KINDS:
                    q = waiting[window]
                    entry["queue"] = _r(float(q.mean()) if len(q) else 0.0)
                    entry["utilisation"] = (
                        _r(float(in_svc[window].mean()) / servers) if servers and hi_i > lo_i else None
                    )
                counts = comp.hist.counts
                recent = counts - comp.hist_at_snapshot if comp.hist_at_snapshot is not None else counts
                entry["p99_ms"] = _ms(LogHistogram.percentiles_of(recent, (99.0,))[0])
                comp.hist_at_snapshot = counts.copy()
            comps[comp.id] = entry
        ok, fail = self._e2e_recent_ok, self._e2e_recent_fail
        e2e = {
            "throughput_rps": _r(ok / dt),
            "failures_rps": _r(fail / dt),
            "success_rate": _r(ok / (ok + fail), 5) if ok + fail else None,
            "p50_ms": _ms(LogHistogram.percentiles_of(self.e2e.counts - self._e2e_at_snapshot, (50.0,))[0]),
            "p99_ms": _ms(LogHistogram.percentiles_of(self.e2e.counts - self._e2e_at_snapshot, (99.0,))[0]),
        }
        self._e2e_at_snapshot = self.e2e.counts.copy()
        self._e2e_recent_ok = self._e2e_recent_fail = 0
        self._last_snap_t = t
        st = self.reqs.status[: self.reqs.n]
        totals = {
            "requests": int(self.reqs.n),
            "succeeded": int(np.count_nonzero(st == 1)),
            "failed": int(np.count_nonzero(st == 2)),
            "in_flight": int(np.count_nonzero(st == 0)),
            "events": int(self.visits),
        }
        active = [f.to_json() for f in self.faults if f.active(t - 1e-9)]
        flows = self.conn_flows - self._conn_at_snapshot
        self._conn_at_snapshot = self.conn_flows.copy()
        conns = {cid: {"rps": _r(int(n) / dt)} for cid, n in zip(self.conn_ids, flows, strict=True)}
        return Snapshot(t, dt, comps, e2e, totals, active, conns)

    def results(self) -> Results:
        return _results(self)


def _percentiles_by_second(done: np.ndarray, lat: np.ndarray, nsec: int) -> list[float | None]:
    out: list[float | None] = [None] * nsec
    if not len(done):
        return out
    sec = np.minimum(done.astype(np.int64), nsec - 1)
    order = np.argsort(sec, kind="stable")
    sec, lat = sec[order], lat[order]
    bounds = np.searchsorted(sec, np.arange(nsec + 1))
    for s in range(nsec):
        a, b = bounds[s], bounds[s + 1]
        if b > a:
            out[s] = _ms(float(np.percentile(lat[a:b], 99)))
    return out


def _results(sim: Simulation) -> Results:
    T = sim.now if sim.now > 0 else sim.duration
    nsec = max(1, int(math.ceil(T - 1e-9)))
    pps = sim._pps
    upto = min(int(round(T * pps)), sim.comps[0].grid.size if sim.comps[0].grid else 0)
    comps_out: dict[str, dict[str, Any]] = {}
    series_comp: dict[str, dict[str, list[Any]]] = {}
    sat: list[dict[str, Any]] = []
    for comp in sim.comps:
        spec = PALETTE[comp.kind]
        entry: dict[str, Any] = {"kind": comp.kind, "label": spec.label, "arrivals": comp.arrivals}
        assert comp.sec_arrivals is not None and comp.sec_drops is not None and comp.sec_errors is not None
        assert comp.sec_work is not None and comp.sec_server_s is not None and comp.sec_instance_s is not None
        if comp.kind == "client":
            entry["rate_rps"] = _r(comp.arrivals / T)
            comps_out[comp.id] = entry
            series_comp[comp.id] = {"arrivals_rps": [_r(x) for x in comp.sec_arrivals[:nsec]]}
            continue
        in_sys, in_svc, q = sim._occupancy(comp, upto)
        g = comp.grid
        assert g is not None
        completed_in = int(g.dep[:upto].sum())
        served_n = max(comp.accepted, 1)
        mean_soj = comp.sojourn_sum / served_n if comp.accepted else None
        server_s = float(comp.sec_server_s[:nsec].sum())
        p50, p95, p99 = comp.hist.percentiles(QS)
        entry.update(
            {
                "accepted": comp.accepted,
                "throughput_rps": _r(completed_in / T),
                "drops": comp.drops,
                "drop_causes": dict(sorted(comp.drop_causes.items())),
                "errors": comp.errors,
                "timeouts": comp.timeouts,
                "retries": comp.retries,
                "mean_in_system": _r(float(in_sys.mean()) if len(in_sys) else 0.0, 5),
                "max_in_system": int(in_sys.max()) if len(in_sys) else 0,
                "mean_sojourn_ms": _ms(mean_soj),
                "p50_ms": _ms(p50),
                "p95_ms": _ms(p95),
                "p99_ms": _ms(p99),
                "arrival_rps": _r(comp.accepted / T),
                # Little's law, L = λW: L sampled on the grid, λW from the time each request spent here.
                "little": None
                if T < sim.duration - 1e-9
                else {
                    "L": _r(float(in_sys.mean()) if len(in_sys) else 0.0, 5),
                    "lambda_W": _r(comp.sojourn_in_run / T, 5),
                },
                "instances_mean": _r(float(comp.sec_instance_s[:nsec].sum()) / T),
                "instances": [[_r(a), b] for a, b in comp.instance_log],
            }
        )
        if comp.kind in CACHING_KINDS:
            entry["hits"] = comp.hits
        if comp.kind == "database":
            # Reads served by a replica see data up to the replication lag old.
            entry["replica_reads"] = comp.hits
            entry["replication_lag_ms"] = float(comp.p["replication_lag_ms"]) if int(comp.p["read_replicas"]) else 0.0
            # Utilisation of each node (primary first): a busy primary hides behind idle replicas otherwise.
            node_s = comp.servers_per_node * T
            entry["nodes"] = [
                {"role": "primary" if j == 0 else "replica", "utilisation": _r(comp.node_busy.get(j, 0.0) / node_s, 5)}
                for j in range(len(comp.nodes))
            ]
        util_series: list[float | None] = [None] * nsec
        queue_series: list[float | None] = [None] * nsec
        offered_series: list[float | None] = [None] * nsec
        if comp.kind in QUEUEING_KINDS:
            entry["mean_wait_ms"] = _ms(comp.wait_sum / served_n if comp.accepted else None)
            entry["mean_service_ms"] = _ms(comp.work_sum / max(comp.served, 1) if comp.served else None)
            entry["queue_mean"] = _r(float(q.mean()) if len(q) else 0.0, 5)
            entry["queue_max"] = int(q.max()) if len(q) else 0
            entry["utilisation"] = _r(comp.busy_sum / server_s, 5) if server_s > 0 else None
            entry["offered_load"] = _r(float(comp.sec_work[:nsec].sum()) / server_s, 5) if server_s > 0 else None
            entry["servers_mean"] = _r(server_s / T)
            for s in range(nsec):
                a, b = s * pps, min((s + 1) * pps, upto)
                ss = float(comp.sec_server_s[s])
                if b > a and ss > 0:
                    util_series[s] = _r(float(in_svc[a:b].sum()) / pps / ss, 4)
                    offered_series[s] = _r(float(comp.sec_work[s]) / ss, 4)
                if b > a:
                    queue_series[s] = _r(float(q[a:b].mean()), 3)
        tp = [_r(float(g.dep[s * pps : (s + 1) * pps].sum())) for s in range(nsec)]
        series_comp[comp.id] = {
            "arrivals_rps": [_r(x) for x in comp.sec_arrivals[:nsec]],
            "throughput_rps": tp,
            "utilisation": util_series,
            "offered_load": offered_series,
            "queue": queue_series,
            "drops": [int(x) for x in comp.sec_drops[:nsec]],
            "errors": [int(x) for x in comp.sec_errors[:nsec]],
            "instances": [_r(x) for x in comp.sec_instance_s[:nsec]],
        }
        comps_out[comp.id] = entry
        busiest = util_series
        if comp.kind == "database" and len(comp.nodes) > 1 and comp.node_sec:
            # The busiest node each second: a saturated primary must not hide behind idle replicas.
            per_node = np.vstack([a[:nsec] for a in comp.node_sec.values()]) / max(comp.servers_per_node, 1)
            busiest = [_r(float(x), 4) for x in per_node.max(axis=0)]
        sat.append(_saturation(comp, busiest, queue_series, comp.sec_drops[:nsec], comp.servers_per_node))

    # End to end.
    n = sim.reqs.n
    st = sim.reqs.status[:n]
    done = sim.reqs.done[:n]
    t0 = sim.reqs.t0[:n]
    # Outcomes known now but dated after the end of the run (a departure already scheduled) are in flight.
    ok = (st == 1) & (done <= T)
    failed = (st == 2) & (done <= T)
    lat = done[ok] - t0[ok]
    e2e_hist = LogHistogram()
    e2e_hist.add(lat)
    finished = int(ok.sum() + failed.sum())
    causes = {CAUSES[c]: int(np.count_nonzero(sim.reqs.cause[:n][failed] == c)) for c in range(len(CAUSES))}
    counts = e2e_hist.counts
    nz = np.flatnonzero(counts)
    histogram = [[_ms(LogHistogram.edge(int(i))), _ms(LogHistogram.edge(int(i) + 1)), int(counts[i])] for i in nz]
    p50, p95, p99 = e2e_hist.percentiles(QS)
    attempts = int(sim.flows.n)
    e2e = {
        "requests": int(n),
        "succeeded": int(ok.sum()),
        "failed": int(failed.sum()),
        "in_flight": int(n - finished),
        "success_rate": _r(float(ok.sum()) / finished, 6) if finished else None,
        "failure_causes": {k: v for k, v in causes.items() if v},
        "throughput_rps": _r(float(ok.sum()) / T),
        "mean_ms": _ms(float(lat.mean()) if len(lat) else None),
        "p50_ms": _ms(p50),
        "p95_ms": _ms(p95),
        "p99_ms": _ms(p99),
        "max_ms": _ms(float(lat.max()) if len(lat) else None),
        "histogram_ms": histogram,
        "attempts": attempts,
        "retry_amplification": _r(attempts / n, 4) if n else None,
    }
    done_ok = done[ok]
    e2e_tp: Any = (
        np.bincount(np.minimum(done_ok.astype(np.int64), nsec - 1), minlength=nsec)[:nsec] if len(done_ok) else []
    )
    fail_s = (
        np.bincount(np.minimum(done[failed].astype(np.int64), nsec - 1), minlength=nsec)[:nsec]
        if failed.any()
        else np.zeros(nsec)
    )
    time_series = {
        "seconds": list(range(nsec)),
        "throughput_rps": [int(x) for x in e2e_tp] if len(e2e_tp) else [0] * nsec,
        "failures_rps": [int(x) for x in fail_s],
        "p99_ms": _percentiles_by_second(done_ok, lat, nsec),
        "components": series_comp,
    }
    jobs = {
        "completed": sim.jobs_done,
        "failed": sim.jobs_failed,
        "p50_ms": _ms(sim.jobs_hist.percentiles((50.0,))[0]),
        "p99_ms": _ms(sim.jobs_hist.percentiles((99.0,))[0]),
    }

    caps = analysis.capacities(sim.design)
    headroom = []
    client_rate = sum(c.arrivals for c in sim.comps if c.kind == "client") / T
    for cap in sorted(caps, key=lambda c: (c.max_client_rps, c.component_id)):
        if cap.kind == "client":
            continue
        h = cap.to_json()
        h["message"] = analysis.headroom_message(cap)
        h["headroom_factor"] = (
            _r(cap.max_client_rps / client_rate, 3) if client_rate > 0 and math.isfinite(cap.max_client_rps) else None
        )
        headroom.append(h)
    bottleneck = _bottleneck(sat, headroom, client_rate)

    cost_items = []
    total_cost = 0.0
    for comp in sim.comps:
        if comp.kind == "client":
            continue
        spec = PALETTE[comp.kind]
        assert comp.sec_instance_s is not None
        inst_h = float(comp.sec_instance_s[:nsec].sum()) / 3600
        c = inst_h * spec.hourly + comp.arrivals / 1e6 * spec.per_million
        total_cost += c
        cost_items.append(
            {"component_id": comp.id, "instance_hours": _r(inst_h, 6), "requests": comp.arrivals, "cost": _r(c, 6)}
        )
    cost = {
        "currency": "USD",
        "run": _r(total_cost, 6),
        "per_hour": _r(total_cost / T * 3600, 4),
        "per_month": _r(total_cost / T * 3600 * 24 * 30, 2),
        "components": cost_items,
        "note": "instances × the palette's hourly price + requests × its per-million price, at this run's rate",
    }
    meta = {
        "seed": sim.seed,
        "duration_s": _r(sim.duration),
        "simulated_s": _r(T),
        "stopped_early": bool(sim.stopped or T < sim.duration - 1e-9),
        "step_s": sim.step,
        "events": int(sim.visits),
        "grid_points_per_second": pps,
        "engine": "simulator.engine 1",
    }
    connectors = {
        cid: {"flows": int(n), "rps": _r(int(n) / T)} for cid, n in zip(sim.conn_ids, sim.conn_flows, strict=True)
    }
    time_series["connectors"] = {cid: [int(x) for x in sim.conn_sec[j][:nsec]] for j, cid in enumerate(sim.conn_ids)}
    return Results(
        meta,
        comps_out,
        e2e,
        jobs,
        time_series,
        bottleneck,
        headroom,
        cost,
        [f.to_json() for f in sim.faults],
        connectors,
    )


def _saturation(
    comp: _Comp, util: list[float | None], queue: list[float | None], drops: np.ndarray, servers_per_node: int
) -> dict[str, Any]:
    """When (first simulated second) and why the component saturated, if it did."""
    first: tuple[float, str, str] | None = None

    def consider(s: float, reason: str, why: str) -> None:
        nonlocal first
        if first is None or s < first[0]:
            first = (s, reason, why)

    for name, t in comp.first_drop.items():
        reason = {
            "pool_exhausted": "pool_exhausted",
            "queue_full": "queue_full",
            "rate_limited": "rate_limited",
            "unavailable": "unavailable",
        }.get(name, "drops")
        why = {
            "pool_exhausted": "its connection pool is exhausted and the wait line is full",
            "queue_full": "the queue is full",
            "rate_limited": "it is rejecting requests above its rate limit",
            "unavailable": "it is down",
            "dropped": "its queues are full and it drops requests",
        }.get(name, name)
        consider(float(int(t)), reason, why)
    for s, u in enumerate(util):
        if u is not None and u >= 0.95:
            consider(float(s), "utilisation", f"its utilisation reached {u:.0%}")
            break
    # Queue growth: three seconds in a row of a growing queue longer than a node's servers.
    run = 0
    for s in range(1, len(queue)):
        a, b = queue[s - 1], queue[s]
        if a is not None and b is not None and b > a and b >= max(20.0, 2.0 * servers_per_node):
            run += 1
            if run >= 3:
                consider(float(s - 2), "queue_growth", f"its queue grew for 3 s in a row (to {b:.0f} waiting)")
                break
        else:
            run = 0
    peak = max((u for u in util if u is not None), default=None)
    return {"component_id": comp.id, "kind": comp.kind, "first": first, "peak_utilisation": peak}


def _bottleneck(sat: list[dict[str, Any]], headroom: list[dict[str, Any]], client_rate: float) -> dict[str, Any]:
    analytical = headroom[0] if headroom and headroom[0]["max_client_rps"] is not None else None
    hit = [s for s in sat if s["first"] is not None and s["first"][1] != "unavailable"]
    if hit:
        hit.sort(key=lambda s: (s["first"][0], -(s["peak_utilisation"] or 0.0)))
        s = hit[0]
        at, reason, why = s["first"]
        label = PALETTE[s["kind"]].label.lower()
        advice = next((h["advice"] for h in headroom if h["component_id"] == s["component_id"]), "")
        capacity = next((h for h in headroom if h["component_id"] == s["component_id"]), None)
        explanation = f"the {label} '{s['component_id']}' saturated first, at {at:.0f} s: {why}"
        if capacity and capacity["max_client_rps"] is not None:
            explanation += f"; analytically it saturates at {capacity['max_client_rps']:,.0f} client rps"
        if advice:
            explanation += f"; {advice}"
        return {
            "saturated": True,
            "component_id": s["component_id"],
            "at_s": at,
            "reason": reason,
            "peak_utilisation": s["peak_utilisation"],
            "explanation": explanation,
            "analytical": analytical,
        }
    if analytical:
        factor = analytical["headroom_factor"]
        text = analytical["message"]
        if factor is not None:
            text = f"nothing saturated; {text} ({factor:.1f}× the offered {client_rate:,.0f} rps)"
        return {
            "saturated": False,
            "component_id": analytical["component_id"],
            "at_s": None,
            "reason": "headroom",
            "peak_utilisation": next(
                (s["peak_utilisation"] for s in sat if s["component_id"] == analytical["component_id"]), None
            ),
            "explanation": text,
            "analytical": analytical,
        }
    return {
        "saturated": False,
        "component_id": None,
        "at_s": None,
        "reason": None,
        "peak_utilisation": None,
        "explanation": "no component has a modelled capacity limit",
        "analytical": None,
    }


def simulate(
    design: Design,
    *,
    seed: int,
    duration_s: float,
    faults: Sequence[Fault] = (),
    progress: Callable[[Snapshot], Iterable[Fault] | None] | None = None,
    progress_every_s: float = 1.0,
    should_stop: Callable[[], bool] | None = None,
    max_requests: int | None = None,
    step_s: float = 0.25,
) -> Results:
    """Run a design for `duration_s` simulated seconds. Every `progress_every_s` simulated seconds `progress`
    gets a Snapshot and may return faults to inject from then on (live failure injection); `should_stop` is
    asked at the same moments and ends the run early (the results say `stopped_early`)."""
    sim = Simulation(design, seed=seed, duration_s=duration_s, faults=faults, max_requests=max_requests, step_s=step_s)
    every = progress_every_s if progress_every_s > 0 else duration_s
    t = 0.0
    while sim.now < sim.duration - 1e-12:
        t = min(sim.duration, t + every)
        sim.step_until(t)
        if progress is not None:
            new = progress(sim.snapshot())
            for f in new or ():
                sim.inject(f)
        if should_stop is not None and should_stop():
            sim.stopped = True
            break
    return sim.results()
