"""The simulator engine (simulator/engine/, pure Python): closed forms (M/M/1, M/M/c, a Jackson network),
Little's law on every run, determinism, failure injection and autoscaling directions, validation, templates.

No database: every run here is in process. Seeds are fixed, so every figure is deterministic; run lengths are
chosen so that the estimates' standard error is well inside the tolerances (about a third of them or less)."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from simulator.engine.design import Design, DesignError, validate
from simulator.engine.palette import PALETTE, palette_json
from simulator.engine.run import Fault, Simulation, simulate
from simulator.engine.templates import TEMPLATES


def service(cid: str, **params: Any) -> dict[str, Any]:
    base = {"instances": 1, "concurrency": 1, "queue_limit": 0, "timeout_ms": 0, "retries": 0}
    return {"id": cid, "kind": "service", "params": {**base, **params}}


def design(components: list[dict[str, Any]], edges: list[tuple]) -> Design:
    conns = []
    for e in edges:
        conns.append({"id": f"{e[0]}-{e[1]}", "from": e[0], "to": e[1], "params": e[2] if len(e) > 2 else {}})
    return Design.from_json({"components": components, "connectors": conns})


def check_little(res: dict[str, Any]) -> None:
    """L = λW at every component: the time-average number in system sampled on the grid against the accepted
    rate × the mean time spent there within the run."""
    for cid, c in res["components"].items():
        if c["kind"] == "client":
            continue
        little = c["little"]
        if little is None:  # a run stopped early
            continue
        L, lw = little["L"], little["lambda_W"]
        assert abs(L - lw) <= 0.03 * max(L, lw) + 0.02, (cid, little)


def run(d: Design, **kw: Any) -> dict[str, Any]:
    res = simulate(d, **kw).to_json()
    check_little(res)
    return res


def erlang_c_wait(c: int, lam: float, mu: float) -> float:
    """Mean waiting time in queue of M/M/c."""
    a = lam / mu
    rho = a / c
    head = sum(a**k / math.factorial(k) for k in range(c))
    tail = a**c / math.factorial(c) / (1 - rho)
    return tail / (head + tail) / (c * mu - lam)


def close(x: float, expected: float, rel: float) -> bool:
    return abs(x - expected) <= rel * abs(expected)


# ----------------------------------------------------------------------------- closed forms


def test_mm1_waiting_time_and_utilisation_match_the_closed_form() -> None:
    lam, es = 50_000.0, 0.00001  # ρ = 0.5; 1,000,000 customers
    d = design(
        [{"id": "c", "kind": "client", "params": {"rate": lam}}, service("s", service_ms=es * 1000)], [("c", "s")]
    )
    s = run(d, seed=11, duration_s=20, step_s=1.0)["components"]["s"]
    rho = lam * es
    wq = rho / (1 / es - lam)
    assert close(s["mean_wait_ms"] / 1000, wq, 0.02), (s["mean_wait_ms"], wq * 1000)
    assert close(s["utilisation"], rho, 0.02)
    assert close(s["mean_sojourn_ms"] / 1000, 1 / (1 / es - lam), 0.02)
    # L = λW also against the closed form: L = ρ / (1 - ρ).
    assert close(s["mean_in_system"], rho / (1 - rho), 0.03)


MMC = (2, 40_000.0, 0.000025)  # c, λ, E[S]: ρ = 0.5; 1.2 × 10⁶ customers (five seeds: −0.4 … +1.2 %)


def test_mmc_waiting_time_matches_erlang_c() -> None:
    c, lam, es = MMC
    d = design(
        [{"id": "c", "kind": "client", "params": {"rate": lam}}, service("s", concurrency=c, service_ms=es * 1000)],
        [("c", "s")],
    )
    s = run(d, seed=5, duration_s=30, step_s=1.0)["components"]["s"]
    wq = erlang_c_wait(c, lam, 1 / es)
    assert close(s["mean_wait_ms"] / 1000, wq, 0.02), (s["mean_wait_ms"], wq * 1000)
    assert close(s["utilisation"], lam * es / c, 0.02)


def test_jackson_network_of_three_stations() -> None:
    """A → B (60 %) or C (40 %), B → C: each station is M/M/c at its own arrival rate (product form)."""
    lam = 40_000.0  # 10⁶ requests; four seeds: every station within 0.8 %
    a_s, b_s, c_s = 0.0000125, 0.00005, 0.0000125  # ρ_A = 0.5, ρ_B = 0.6 on 2 servers, ρ_C = 0.5
    d = design(
        [
            {"id": "c", "kind": "client", "params": {"rate": lam}},
            service("A", service_ms=a_s * 1000),
            service("B", concurrency=2, service_ms=b_s * 1000),
            service("C", service_ms=c_s * 1000),
        ],
        [("c", "A"), ("A", "B", {"weight": 0.6}), ("A", "C", {"weight": 0.4}), ("B", "C")],
    )
    res = run(d, seed=3, duration_s=25, step_s=1.0)
    comps = res["components"]
    w_a = 1 / (1 / a_s - lam)
    w_b = erlang_c_wait(2, 0.6 * lam, 1 / b_s) + b_s
    w_c = 1 / (1 / c_s - lam)
    assert close(comps["A"]["arrival_rps"], lam, 0.01)
    assert close(comps["B"]["arrival_rps"], 0.6 * lam, 0.01)
    assert close(comps["C"]["arrival_rps"], lam, 0.01)
    assert close(comps["A"]["mean_sojourn_ms"] / 1000, w_a, 0.02)
    assert close(comps["B"]["mean_sojourn_ms"] / 1000, w_b, 0.02)
    assert close(comps["C"]["mean_sojourn_ms"] / 1000, w_c, 0.02)
    assert close(res["end_to_end"]["mean_ms"] / 1000, w_a + 0.6 * w_b + w_c, 0.02)


# ----------------------------------------------------------------------------- determinism, API shapes


def web_design(rate: float = 1000, **api: Any) -> Design:
    return design(
        [
            {"id": "users", "kind": "client", "params": {"rate": rate, "read_ratio": 0.9}},
            {"id": "lb", "kind": "load_balancer"},
            {"id": "api", "kind": "service", "params": {"instances": 4, "concurrency": 4, "service_ms": 8, **api}},
            {"id": "cache", "kind": "cache", "params": {"hit_ratio": 0.8}},
            {"id": "db", "kind": "database", "params": {"pool_size": 10, "read_ms": 4, "write_ms": 8}},
        ],
        [
            ("users", "lb"),
            ("lb", "api"),
            ("api", "cache", {"route": "read"}),
            ("api", "db", {"route": "write"}),
            ("cache", "db", {"route": "miss"}),
        ],
    )


def test_same_seed_same_results_byte_for_byte() -> None:
    faults = [Fault("kill", "api", at_s=3, until_s=6), Fault("error", "db", at_s=2, error_rate=0.1)]
    a = json.dumps(run(web_design(), seed=42, duration_s=10, faults=faults), sort_keys=True)
    b = json.dumps(run(web_design(), seed=42, duration_s=10, faults=faults), sort_keys=True)
    c = json.dumps(run(web_design(), seed=43, duration_s=10, faults=faults), sort_keys=True)
    assert a == b
    assert a != c
    json.loads(a)  # strict JSON (no NaN)


def test_results_and_snapshots_have_what_the_ui_needs() -> None:
    snaps = []
    res = run(web_design(), seed=1, duration_s=5, progress=lambda s: snaps.append(s.to_json()))
    assert [s["t"] for s in snaps] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert snaps[-1]["components"]["api"]["utilisation"] > 0
    assert snaps[-1]["end_to_end"]["throughput_rps"] > 900
    json.dumps(snaps)
    api = res["components"]["api"]
    for key in (
        "arrivals",
        "throughput_rps",
        "utilisation",
        "queue_mean",
        "queue_max",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "errors",
        "drops",
        "instances",
    ):
        assert key in api
    e2e = res["end_to_end"]
    assert e2e["p50_ms"] <= e2e["p95_ms"] <= e2e["p99_ms"]
    assert e2e["success_rate"] == 1.0
    assert sum(b[2] for b in e2e["histogram_ms"]) == e2e["succeeded"]
    ts = res["time_series"]
    assert len(ts["throughput_rps"]) == len(ts["p99_ms"]) == 5
    assert len(ts["components"]["db"]["utilisation"]) == 5
    assert res["cost"]["run"] > 0 and res["cost"]["per_month"] > 0
    # Traffic per connector (the canvas animates flow along them): every request takes users → lb → api;
    # reads go to the cache, 20 % of them on to the database, writes straight there.
    conns = res["connectors"]
    assert conns["users-lb"]["flows"] == e2e["requests"]
    assert conns["lb-api"]["flows"] == e2e["requests"]
    reads = conns["api-cache"]["flows"]
    assert close(reads / e2e["requests"], 0.9, 0.02)
    assert close(conns["cache-db"]["flows"] / reads, 0.2, 0.1)
    assert close(conns["api-db"]["flows"] / e2e["requests"], 0.1, 0.15)
    assert sum(ts["connectors"]["users-lb"]) == e2e["requests"]
    assert snaps[-1]["connectors"]["lb-api"]["rps"] > 900


# ----------------------------------------------------------------------------- failures


def four_instances(rate: float = 320.0) -> Design:
    """4 instances, one request at a time each, 10 ms: at 320 rps they are 80 % busy."""
    return design(
        [
            {"id": "users", "kind": "client", "params": {"rate": rate}},
            service("api", instances=4, service_ms=10, queue_limit=25),
        ],
        [("users", "api")],
    )


def test_killing_one_of_four_instances_at_80_percent_overloads_the_rest() -> None:
    base = run(four_instances(), seed=9, duration_s=40)
    hurt = run(four_instances(), seed=9, duration_s=40, faults=[Fault("kill", "api", at_s=10, count=1)])
    after = slice(15, 40)
    series = hurt["time_series"]["components"]["api"]
    offered = series["offered_load"][after]
    util = series["utilisation"][after]
    assert close(sum(offered) / len(offered), 320 * 0.010 / 3, 0.05)  # ≈ 1.07 of what 3 instances can do
    assert sum(util) / len(util) > 0.97
    assert base["components"]["api"]["drops"] == 0
    assert hurt["components"]["api"]["drops"] > 100
    assert hurt["components"]["api"]["drop_causes"] == {"dropped": hurt["components"]["api"]["drops"]}
    assert hurt["end_to_end"]["p99_ms"] > 3 * base["end_to_end"]["p99_ms"]
    assert hurt["components"]["api"]["instances"] == [[0.0, 4], [10.0, 3]]
    assert hurt["bottleneck"]["component_id"] == "api" and hurt["bottleneck"]["saturated"]


def test_added_latency_raises_p99() -> None:
    base = run(web_design(), seed=2, duration_s=10)
    slow = run(web_design(), seed=2, duration_s=10, faults=[Fault("latency", "db", latency_ms=50)])
    assert slow["end_to_end"]["p99_ms"] > base["end_to_end"]["p99_ms"] + 40
    assert slow["components"]["db"]["mean_sojourn_ms"] > base["components"]["db"]["mean_sojourn_ms"] + 49


def test_cache_partition_raises_database_load() -> None:
    res = run(web_design(), seed=4, duration_s=20, faults=[Fault("partition", "cache", at_s=10)])
    db = res["time_series"]["components"]["db"]["arrivals_rps"]
    before, after = sum(db[2:10]) / 8, sum(db[12:20]) / 8
    # Before: writes (100/s) + read misses (900 × 0.2); after: every read reaches the database.
    assert close(before, 100 + 900 * 0.2, 0.1)
    assert close(after, 1000, 0.1)
    assert res["components"]["db"]["utilisation"] > 0


def dependency(retries: int, error_rate: float) -> Design:
    return design(
        [
            {"id": "users", "kind": "client", "params": {"rate": 500}},
            service("api", instances=8, concurrency=8, service_ms=2, retries=retries, backoff_ms=20, timeout_ms=5000),
            {"id": "partner", "kind": "external_api", "params": {"latency_ms": 50, "error_rate": 0.0}},
        ],
        [("users", "api"), ("api", "partner")],
    )


def test_retries_amplify_load_under_errors() -> None:
    fault = [Fault("error", "partner", error_rate=0.5)]
    plain = run(dependency(0, 0.5), seed=6, duration_s=20, faults=fault)
    retried = run(dependency(3, 0.5), seed=6, duration_s=20, faults=fault)
    requests = retried["end_to_end"]["requests"]
    # Each attempt fails with probability 1/2: 1 + 1/2 + 1/4 + 1/8 = 1.875 attempts per request.
    assert close(retried["components"]["partner"]["arrivals"] / requests, 1.875, 0.04)
    assert close(plain["components"]["partner"]["arrivals"] / plain["end_to_end"]["requests"], 1.0, 0.01)
    assert close(retried["end_to_end"]["success_rate"], 1 - 0.5**4, 0.02)
    assert close(plain["end_to_end"]["success_rate"], 0.5, 0.04)
    assert retried["components"]["api"]["retries"] > 0.8 * requests
    assert retried["end_to_end"]["retry_amplification"] > 1.8


def test_retry_storm_when_the_database_slows_down() -> None:
    """The database becomes 4× slower: calls time out, the service retries them, the abandoned queries keep the
    database busy, and the load it receives multiplies."""
    d = design(
        [
            {"id": "users", "kind": "client", "params": {"rate": 400, "read_ratio": 1.0}},
            service("api", instances=4, concurrency=16, service_ms=2, timeout_ms=100, retries=3, backoff_ms=10),
            {"id": "db", "kind": "database", "params": {"pool_size": 4, "read_ms": 6, "pool_wait_limit": 0}},
        ],
        [("users", "api"), ("api", "db")],
    )
    calm = run(d, seed=8, duration_s=20)
    storm = run(d, seed=8, duration_s=20, faults=[Fault("slow", "db", at_s=5, factor=4)])
    assert calm["end_to_end"]["retry_amplification"] < 1.01
    db = storm["time_series"]["components"]["db"]["arrivals_rps"]
    assert sum(db[12:20]) / 8 > 2.5 * 400
    assert storm["components"]["api"]["timeouts"] > 1000
    assert storm["end_to_end"]["failure_causes"]["timeout"] > 0
    assert storm["end_to_end"]["success_rate"] < 0.5


def test_autoscaling_follows_a_ramp() -> None:
    def ramp(autoscale: bool) -> Design:
        return design(
            [
                {
                    "id": "users",
                    "kind": "client",
                    "params": {"rate": 1000, "pattern": "ramp", "ramp_from": 100, "ramp_s": 40},
                },
                service(
                    "api",
                    instances=2,
                    service_ms=10,
                    queue_limit=100,
                    autoscale=autoscale,
                    min_instances=2,
                    max_instances=30,
                    target_utilisation=0.6,
                    scale_up_delay_s=3,
                    scale_interval_s=2,
                ),
            ],
            [("users", "api")],
        )

    fixed = run(ramp(False), seed=1, duration_s=60)
    scaled = run(ramp(True), seed=1, duration_s=60)
    instances = scaled["time_series"]["components"]["api"]["instances"]
    assert instances[0] == 2 and instances[-1] >= 15
    assert all(b >= a - 1e-9 for a, b in zip(instances[:45], instances[1:45], strict=False))
    assert scaled["end_to_end"]["success_rate"] > 0.98
    assert fixed["end_to_end"]["success_rate"] < 0.5
    assert scaled["end_to_end"]["p99_ms"] < fixed["end_to_end"]["p99_ms"]
    assert scaled["cost"]["run"] > fixed["cost"]["run"]


def test_faults_injected_during_a_live_run() -> None:
    sim = Simulation(four_instances(), seed=3, duration_s=20)
    sim.step_until(5)
    assert sim.snapshot().components["api"]["instances"] == 4
    sim.inject(Fault("kill", "api", at_s=0, count=2))  # in the past: starts now
    sim.step_until(10)
    snap = sim.snapshot()
    assert snap.components["api"]["instances"] == 2
    assert snap.components["api"]["drops"] > 0
    assert [f["kind"] for f in snap.faults] == ["kill"]
    sim.step_until(20)
    res = sim.results().to_json()
    check_little(res)
    assert res["components"]["api"]["instances"] == [[0.0, 4], [5.0, 2]]
    assert res["faults"][0]["at_s"] == 5.0

    # The same through simulate(): the progress callback returns the fault.
    def progress(snap: Any) -> list[Fault]:
        return [Fault("kill", "api", at_s=snap.t, until_s=snap.t + 5, count=1)] if snap.t == 5.0 else []

    res2 = run(four_instances(), seed=3, duration_s=20, progress=progress)
    assert res2["components"]["api"]["instances"] == [[0.0, 4], [5.0, 3], [10.0, 4]]


def test_stop_and_request_cap() -> None:
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) >= 3

    res = run(web_design(), seed=1, duration_s=30, should_stop=stop)
    assert res["meta"]["stopped_early"] and res["meta"]["simulated_s"] == 3.0
    capped = run(web_design(), seed=1, duration_s=30, max_requests=2000)
    assert capped["end_to_end"]["requests"] == 2000


# ----------------------------------------------------------------------------- components


def test_traffic_patterns() -> None:
    def client(**p: Any) -> Design:
        return design(
            [{"id": "u", "kind": "client", "params": {"rate": 1000, **p}}, service("s", service_ms=0.1)], [("u", "s")]
        )

    ramp = run(client(pattern="ramp", ramp_from=0, ramp_s=20), seed=1, duration_s=20)["time_series"]["components"]["u"]
    assert close(sum(ramp["arrivals_rps"][:5]) / 5, 125, 0.15) and close(sum(ramp["arrivals_rps"][15:]) / 5, 875, 0.05)
    spike = run(client(pattern="spike", spike_at_s=5, spike_s=5, spike_multiplier=4), seed=1, duration_s=15)
    arr = spike["time_series"]["components"]["u"]["arrivals_rps"]
    assert close(sum(arr[5:10]) / 5, 4000, 0.05) and close(sum(arr[10:]) / 5, 1000, 0.08)
    diurnal = run(client(pattern="diurnal", diurnal_period_s=20, diurnal_amplitude=0.5), seed=1, duration_s=20)
    arr = diurnal["time_series"]["components"]["u"]["arrivals_rps"]
    assert close(sum(arr) / 20, 1000, 0.03) and max(arr) > 1350 and min(arr) < 650


def test_gateway_rate_limit_and_full_queue() -> None:
    d = design(
        [
            {"id": "u", "kind": "client", "params": {"rate": 400}},
            {"id": "gw", "kind": "api_gateway", "params": {"rate_limit_rps": 100}},
            {"id": "q", "kind": "queue", "params": {"capacity": 20, "workers": 1, "worker_ms": 20}},
        ],
        [("u", "gw"), ("gw", "q")],
    )
    res = run(d, seed=1, duration_s=20)
    gw, q = res["components"]["gw"], res["components"]["q"]
    assert close(gw["accepted"] / 20, 100, 0.02)
    assert gw["drop_causes"]["rate_limited"] == gw["drops"]
    # 100 messages/s into a queue drained at 50/s: it fills and refuses.
    assert q["drop_causes"]["queue_full"] > 500
    assert q["queue_max"] <= 20
    # Producers are answered at enqueue (2 ms after the gateway's 2 ms), the jobs wait in the queue.
    assert res["end_to_end"]["p99_ms"] < 5
    assert res["jobs"]["p50_ms"] > 100
    assert res["bottleneck"]["component_id"] in ("gw", "q")


def test_round_robin_has_a_worse_tail_than_least_connections() -> None:
    def lb(algorithm: str) -> Design:
        return design(
            [
                {"id": "u", "kind": "client", "params": {"rate": 700}},
                {"id": "lb", "kind": "load_balancer", "params": {"algorithm": algorithm}},
                service("api", instances=8, service_ms=10),
            ],
            [("u", "lb"), ("lb", "api")],
        )

    rr = run(lb("round_robin"), seed=5, duration_s=30)
    lc = run(lb("least_connections"), seed=5, duration_s=30)
    assert rr["end_to_end"]["p99_ms"] > 1.5 * lc["end_to_end"]["p99_ms"]


def test_database_bottleneck_and_headroom() -> None:
    d = design(
        [
            {"id": "users", "kind": "client", "params": {"rate": 2500, "read_ratio": 1.0}},
            service("api", instances=20, concurrency=8, service_ms=2, queue_limit=100),
            {"id": "db", "kind": "database", "params": {"pool_size": 10, "read_ms": 5, "pool_wait_limit": 200}},
        ],
        [("users", "api"), ("api", "db")],
    )
    res = run(d, seed=1, duration_s=15)
    head = {h["component_id"]: h for h in res["headroom"]}
    assert head["db"]["max_client_rps"] == 2000.0  # 10 connections / 5 ms
    assert head["api"]["max_client_rps"] == 80_000.0
    assert "add a read replica or a cache" in head["db"]["message"]
    b = res["bottleneck"]
    assert b["saturated"] and b["component_id"] == "db"
    assert b["reason"] in ("utilisation", "pool_exhausted", "queue_growth")
    assert res["components"]["db"]["drop_causes"].get("pool_exhausted", 0) > 0
    # Below saturation the bottleneck is the analytical one, with its headroom.
    calm = run(
        design(
            [
                {"id": "users", "kind": "client", "params": {"rate": 1000, "read_ratio": 1.0}},
                service("api", instances=20, concurrency=8, service_ms=2, queue_limit=100),
                {"id": "db", "kind": "database", "params": {"pool_size": 10, "read_ms": 5, "read_replicas": 1}},
            ],
            [("users", "api"), ("api", "db")],
        ),
        seed=1,
        duration_s=5,
    )
    assert not calm["bottleneck"]["saturated"] and calm["bottleneck"]["component_id"] == "db"
    assert calm["components"]["db"]["replica_reads"] == calm["components"]["db"]["arrivals"]
    assert calm["components"]["db"]["replication_lag_ms"] == 100.0
    nodes = calm["components"]["db"]["nodes"]
    assert [n["role"] for n in nodes] == ["primary", "replica"]
    assert nodes[0]["utilisation"] == 0.0 and close(nodes[1]["utilisation"], 0.5, 0.05)  # 1,000 rps × 5 ms / 10
    assert close(res["components"]["db"]["nodes"][0]["utilisation"], 1.0, 0.03)
    assert calm["headroom"][0]["max_client_rps"] == 2000.0  # reads on the one replica


def test_cycle_through_a_queue_runs() -> None:
    d = design(
        [
            {"id": "u", "kind": "client", "params": {"rate": 200, "read_ratio": 0.0}},
            service("api", instances=2, concurrency=4, service_ms=2),
            {"id": "q", "kind": "queue", "params": {"workers": 4, "worker_ms": 5}},
            {"id": "ext", "kind": "external_api", "params": {"error_rate": 0.0}},
        ],
        # api → queue → api would loop forever: route the queue's jobs to the API once (writes), then out.
        [("u", "api"), ("api", "q", {"route": "write"}), ("q", "ext")],
    )
    assert validate(d) == []
    res = run(d, seed=1, duration_s=5)
    assert res["jobs"]["completed"] > 900


# ----------------------------------------------------------------------------- validation


def codes(data: dict[str, Any]) -> set[tuple[str | None, str | None, str]]:
    return {(p.component_id, p.connector_id, p.code) for p in validate(Design.from_json(data)) if p.severity == "error"}


def test_validation_names_each_problem_at_its_component() -> None:
    ok = {
        "components": [{"id": "u", "kind": "client"}, {"id": "a", "kind": "service"}],
        "connectors": [{"id": "k", "from": "u", "to": "a"}],
    }
    assert codes(ok) == set()
    bad = {
        "components": [
            {"id": "u", "kind": "client", "params": {"rate": -5}},
            {"id": "a", "kind": "service", "params": {"instances": 0}},
            {"id": "b", "kind": "service", "params": {"min_instances": 5, "max_instances": 2}},
            {"id": "c", "kind": "cache", "params": {"hit_ratio": 1.5}},
            {"id": "x", "kind": "teleporter"},
            {"id": "d", "kind": "database", "params": {"pool_size": 2.5}},
        ],
        "connectors": [
            {"id": "k1", "from": "u", "to": "a"},
            {"id": "k2", "from": "a", "to": "b"},
            {"id": "k3", "from": "b", "to": "a"},
            {"id": "k4", "from": "a", "to": "nowhere"},
            {"id": "k5", "from": "a", "to": "c", "params": {"route": "sideways", "weight": -1}},
        ],
    }
    assert codes(bad) == {
        ("u", None, "invalid_param"),
        ("a", None, "invalid_param"),
        ("b", None, "invalid_param"),
        ("c", None, "invalid_param"),
        ("x", None, "unknown_kind"),
        ("d", None, "invalid_param"),
        (None, "k4", "dangling_connector"),
        (None, "k5", "invalid_param"),
        ("a", None, "cycle_without_queue"),
    }
    problems = validate(Design.from_json(bad))
    assert "negative" in next(p.message for p in problems if p.component_id == "u")
    no_entry = {"components": [{"id": "a", "kind": "service"}], "connectors": []}
    assert codes(no_entry) == {(None, None, "no_entry_point")}
    lonely = {"components": [{"id": "u", "kind": "client"}], "connectors": []}
    assert codes(lonely) == {("u", None, "entry_not_connected")}
    with pytest.raises(DesignError) as err:
        simulate(Design.from_json(bad), seed=1, duration_s=1)
    assert any(p.code == "cycle_without_queue" for p in err.value.problems)
    with pytest.raises(DesignError):
        Design.from_json({"components": [{"kind": "client"}]})
    with pytest.raises(DesignError):
        simulate(Design.from_json(ok), seed=1, duration_s=1, faults=[Fault("partition", "a")])


def test_palette_is_json_and_its_defaults_validate() -> None:
    data = json.loads(json.dumps(palette_json()))
    assert {k["kind"] for k in data["kinds"]} == set(PALETTE)
    for kind in PALETTE:
        comps = [{"id": "u", "kind": "client"}] + ([] if kind == "client" else [{"id": "x", "kind": kind}])
        conns = [] if kind == "client" else [{"id": "k", "from": "u", "to": "x"}]
        if kind == "client":
            comps.append({"id": "s", "kind": "service"})
            conns = [{"id": "k", "from": "u", "to": "s"}]
        explicit = [{**c, "params": PALETTE[c["kind"]].defaults()} for c in comps]
        assert codes({"components": explicit, "connectors": conns}) == set(), kind


@pytest.mark.parametrize("template", TEMPLATES, ids=[t["id"] for t in TEMPLATES])
def test_templates_validate_clean_and_run(template: dict[str, Any]) -> None:
    d = Design.from_json(template["design"])
    assert validate(d) == []
    assert all(
        isinstance(c["x"], int | float) and isinstance(c["y"], int | float) for c in template["design"]["components"]
    )
    res = run(d, seed=1, duration_s=5)
    assert res["end_to_end"]["success_rate"] > 0.95
    assert res["bottleneck"]["component_id"] is not None


def test_bench_design_validates_and_runs_small() -> None:
    """bench/sim.py's 10-component design (make bench-sim), at a smoke size."""
    from bench.sim import mm1, ten_components

    d = ten_components(1000)
    assert validate(d) == [] and len(d.components) == 10
    res = run(d, seed=1, duration_s=3)
    assert res["end_to_end"]["success_rate"] > 0.99 and res["meta"]["events"] > 3 * res["end_to_end"]["requests"]
    assert validate(mm1(1000)) == []


def _random_design(rng: random.Random) -> tuple[dict[str, Any], list[Fault]]:
    """A random valid-looking design: every kind, random parameters within the palette's bounds, forward
    connectors with random routes and weights, sometimes a connector back from a queue, and random faults."""

    def params(kind: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in PALETTE[kind].params:
            if rng.random() < 0.5:
                continue
            if p.type == "bool":
                out[p.name] = rng.random() < 0.5
            elif p.type == "choice":
                out[p.name] = rng.choice(p.choices)
            else:
                lo = float(p.min if p.min is not None else 0)
                v = rng.uniform(lo, min(float(p.max) if p.max is not None else lo + 50, lo + 50))
                out[p.name] = int(round(v)) if p.type == "int" else v
        if kind == "service" and out.get("min_instances", 1) > out.get("max_instances", 10):
            out["min_instances"], out["max_instances"] = out.get("max_instances", 10), out.get("min_instances", 1)
        if kind == "client":
            out["rate"] = rng.uniform(0, 1000)
        return out

    kinds = [k for k in PALETTE if k != "client"]
    comps = [{"id": "c0", "kind": "client", "params": params("client")}]
    comps += [
        {"id": f"n{i}", "kind": k, "params": params(k)} for i, k in enumerate(rng.choices(kinds, k=rng.randint(1, 7)))
    ]
    ids = [c["id"] for c in comps]
    routes = ["any", "read", "write", "miss"]
    conns = [
        {"id": f"f{j}", "from": rng.choice(ids[:j]), "to": ids[j], "params": {"route": rng.choice(routes)}}
        for j in range(1, len(ids))
    ]
    for n in range(rng.randint(0, 3)):
        a, b = sorted(rng.sample(range(len(ids)), 2))
        conns.append({"id": f"x{n}", "from": ids[a], "to": ids[b], "params": {"weight": rng.uniform(0.1, 3)}})
    queues = [c["id"] for c in comps if c["kind"] == "queue"]
    if queues:
        conns.append({"id": "back", "from": queues[0], "to": rng.choice(ids[1:]), "params": {"route": "write"}})
    faults = []
    for _ in range(rng.randint(0, 3)):
        c = rng.choice(comps[1:])
        kind = rng.choice(["kill", "latency", "error", "slow", "partition"])
        if kind == "partition" and c["kind"] not in ("cache", "cdn"):
            kind = "slow"
        at = rng.uniform(0, 1.5)
        faults.append(
            Fault(
                kind,
                c["id"],
                at_s=at,
                until_s=at + 0.5 if rng.random() < 0.5 else None,
                count=rng.randint(1, 4),
                latency_ms=rng.uniform(0, 100),
                error_rate=rng.random(),
                factor=rng.uniform(0.5, 4),
            )
        )
    return {"components": comps, "connectors": conns}, faults


def test_random_designs_run_and_account_for_every_request() -> None:
    """40 random designs with random faults: no exception, strict JSON, every request succeeded, failed or is
    still in flight, and Little's law at every component (a longer run of the same kind outside the suite,
    552 designs at up to 3,000 rps, found nothing either)."""
    ran = 0
    for i in range(60):
        rng = random.Random(i)
        data, faults = _random_design(rng)
        d = Design.from_json(data)
        if any(p.severity == "error" for p in validate(d)):
            continue
        res = run(d, seed=i, duration_s=2, faults=faults, step_s=rng.choice([0.1, 0.25, 1.0]))
        json.dumps(res, allow_nan=False)
        e = res["end_to_end"]
        assert e["requests"] == e["succeeded"] + e["failed"] + e["in_flight"]
        ran += 1
        if ran == 40:
            break
    assert ran == 40


def test_a_saturated_primary_is_the_bottleneck_behind_idle_replicas() -> None:
    d = design(
        [
            {"id": "users", "kind": "client", "params": {"rate": 1000, "read_ratio": 0.5}},
            service("api", instances=10, concurrency=8, service_ms=2, queue_limit=100),
            {
                "id": "db",
                "kind": "database",
                "params": {"read_replicas": 2, "pool_size": 10, "read_ms": 2, "write_ms": 21, "pool_wait_limit": 0},
            },
        ],
        [("users", "api"), ("api", "db")],
    )
    res = run(d, seed=2, duration_s=15)
    db = res["components"]["db"]
    assert db["nodes"][0]["utilisation"] > 0.97 and db["nodes"][1]["utilisation"] < 0.1
    assert db["utilisation"] < 0.5  # the component as a whole looks half idle
    b = res["bottleneck"]
    assert b["component_id"] == "db" and b["reason"] == "utilisation"
    assert "writes dominate" in b["explanation"]
