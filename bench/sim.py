"""Simulator engine benchmark (`make bench-sim`): wall time of simulated runs on one core.

Times are CPU seconds of this process (`time.process_time`: what one core spends; the engine is single-threaded)
and wall seconds; on a shared, loaded machine wall time includes waiting for a core, so CPU time is the figure.

Scenarios:
- `ten`: the 10-component design below (client, DNS, CDN, load balancer, gateway, service, cache, database,
  queue, external API) at 10,000 requests/s for 60 simulated seconds (the issue's bar: under 2 s of wall time).
- `chat`: the "chat system" template (Parley: LB → 2 uvicorn workers → Redis → PostgreSQL) at its 1,000 rps.
- `mm1`: one M/M/1 station at 50,000 rps for 20 s (the vectorised Lindley path alone).
Each reports request-events per second: one request visiting one component (client arrivals not counted).

Usage: python bench/sim.py [--rate 10000] [--seconds 60] [--repeat 3] [--json out.json]
Nothing here needs the database or Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.engine.design import Design  # noqa: E402
from simulator.engine.run import simulate  # noqa: E402
from simulator.engine.templates import TEMPLATES  # noqa: E402


def ten_components(rate: float) -> Design:
    comps = [
        ("users", "client", {"rate": rate, "read_ratio": 0.9}),
        ("dns", "dns", {}),
        ("cdn", "cdn", {"hit_ratio": 0.6}),
        ("lb", "load_balancer", {"algorithm": "least_connections"}),
        ("gateway", "api_gateway", {"rate_limit_rps": 50_000}),
        ("api", "service", {"instances": 16, "concurrency": 4, "service_ms": 5, "timeout_ms": 1000, "retries": 2}),
        ("cache", "cache", {"hit_ratio": 0.8}),
        ("db", "database", {"read_replicas": 1, "pool_size": 40, "read_ms": 4, "write_ms": 8}),
        ("queue", "queue", {"workers": 32, "worker_ms": 20}),
        ("email", "external_api", {"latency_ms": 80, "error_rate": 0.01}),
    ]
    conns = [
        ("users", "dns", {}),
        ("dns", "cdn", {}),
        ("cdn", "lb", {"route": "miss"}),
        ("lb", "gateway", {}),
        ("gateway", "api", {}),
        ("api", "cache", {"route": "read"}),
        ("api", "queue", {"route": "write"}),
        ("cache", "db", {"route": "miss"}),
        ("queue", "db", {"weight": 0.5}),
        ("queue", "email", {"weight": 0.5}),
    ]
    return Design.from_json(
        {
            "components": [{"id": i, "kind": k, "params": p} for i, k, p in comps],
            "connectors": [{"id": f"{a}-{b}", "from": a, "to": b, "params": p} for a, b, p in conns],
        }
    )


def mm1(rate: float) -> Design:
    return Design.from_json(
        {
            "components": [
                {"id": "c", "kind": "client", "params": {"rate": rate}},
                {
                    "id": "s",
                    "kind": "service",
                    "params": {
                        "instances": 1,
                        "concurrency": 1,
                        "service_ms": 1000 * 0.8 / rate,
                        "queue_limit": 0,
                        "timeout_ms": 0,
                        "retries": 0,
                    },
                },
            ],
            "connectors": [{"id": "k", "from": "c", "to": "s"}],
        }
    )


def timed(design: Design, seconds: float, repeat: int, step_s: float = 0.1) -> dict[str, Any]:
    cpus = []
    walls = []
    res = None
    for i in range(repeat):
        t0, w0 = time.process_time(), time.perf_counter()
        # A progress callback every simulated second, as a live run has (it builds a snapshot each time).
        res = simulate(design, seed=i + 1, duration_s=seconds, progress=lambda s: None, step_s=step_s)
        cpus.append(time.process_time() - t0)
        walls.append(time.perf_counter() - w0)
    assert res is not None
    j = res.to_json()
    events = j["meta"]["events"]
    best = min(cpus)
    return {
        "cpu_s": [round(w, 3) for w in cpus],
        "wall_s": [round(w, 3) for w in walls],
        "best_cpu_s": round(best, 3),
        "median_cpu_s": round(sorted(cpus)[len(cpus) // 2], 3),
        "requests": j["end_to_end"]["requests"],
        "events": events,
        "events_per_s": round(events / best),
        "success_rate": j["end_to_end"]["success_rate"],
        "p99_ms": j["end_to_end"]["p99_ms"],
        "bottleneck": j["bottleneck"]["explanation"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=10_000)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=str, default="")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out: dict[str, Any] = {"python": platform.python_version(), "load_avg": os.getloadavg()}
    print(f"ten components, {args.rate:,.0f} rps, {args.seconds:g} simulated s ...", flush=True)
    out["ten"] = timed(ten_components(args.rate), args.seconds, args.repeat)
    print(json.dumps(out["ten"], indent=1), flush=True)
    chat = next(t for t in TEMPLATES if t["id"] == "chat")
    out["chat"] = timed(Design.from_json(chat["design"]), args.seconds, args.repeat)
    print("chat template:", json.dumps(out["chat"], indent=1), flush=True)
    out["mm1"] = timed(mm1(50_000), 20, args.repeat, step_s=1.0)
    print("M/M/1 at 50,000 rps, 20 s:", json.dumps(out["mm1"], indent=1), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
