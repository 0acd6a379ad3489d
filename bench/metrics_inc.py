"""The cost of one metric update, in one run: prometheus-client in multiprocess mode (what the web
workers and Celery run: core/metrics.py) against single-process mode and a plain Python counter.

    .venv/bin/python bench/metrics_inc.py [--number 200000] [--repeat 7] [--rounds 3]

The per-frame and per-event helpers (frame_received, frame_sent, delivered + latency) go through
core.metrics' tally: each timing includes writing the tally out (`tally.flush()`) after its
`number` calls, so a figure is the whole cost of an update, deferred or not.

Each mode runs in a child process of its own (prometheus-client picks its value class at import,
from PROMETHEUS_MULTIPROC_DIR), the two alternating `rounds` times; each figure is the best of
all its timings of `number` calls. On a loaded machine compare the ratios of one run, not the
nanoseconds across runs. No database, no Redis.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
from core import metrics

number, repeat = {number}, {repeat}


class Plain:
    value = 0

    def inc(self, amount=1):
        self.value += amount


plain = Plain()
counter = metrics.BUS_PUBLISHED.labels(metrics.worker())
gauge = metrics.OPEN["socket"]
histogram = metrics.DELIVERY_LATENCY
metrics.known_frame_types(["message.send"])
frame = '{{"type":"message.ack","room":"r"}}'
cases = {{
    "plain python counter": lambda: plain.inc(),
    "metrics.frame_received, written at once (before the tally)": lambda: metrics._frames_in("message.send").inc(),
    "Counter child .inc()": lambda: counter.inc(),
    "Counter .labels(x).inc() (a lookup per event)": lambda: metrics.BUS_PUBLISHED.labels("w").inc(),
    "Gauge child .inc()": lambda: gauge.inc(),
    "Histogram .observe()": lambda: histogram.observe(0.003),
    "metrics.frame_received(type)": lambda: metrics.frame_received("message.send"),
    "metrics.frame_sent(text)": lambda: metrics.frame_sent(frame),
    "metrics.delivered(event, n) + latency": lambda: (
        metrics.delivered("room.sequenced", 2),
        metrics.delivery_latency({{"type": "room.sequenced", "at": 0.0}}),
    ),
}}


def timed(call):
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            call()
        metrics.tally.flush()
        best = min(best, time.perf_counter() - started)
    return best


result = {{}}
for name, call in cases.items():
    result[name] = timed(call) / number * 1e9
print(json.dumps(result))
"""


def run(mode: str, number: int, repeat: int) -> dict[str, float]:
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    with tempfile.TemporaryDirectory(prefix="parley-bench-metrics-") as directory:
        if mode == "multiprocess":
            env["PROMETHEUS_MULTIPROC_DIR"] = directory
        code = CHILD.format(root=str(ROOT), number=number, repeat=repeat)
        output = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(output.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # The two modes alternate, `rounds` times each, and each case keeps its best: a busy moment of
    # the machine then skews neither mode alone.
    single: dict[str, float] = {}
    multi: dict[str, float] = {}
    for _ in range(args.rounds):
        for mode, best in (("single", single), ("multiprocess", multi)):
            for name, ns in run(mode, args.number, args.repeat).items():
                best[name] = min(ns, best.get(name, ns))
    base = multi["plain python counter"]
    print(f"{'ns per call (best of ' + str(args.repeat) + ')':<50} {'single':>9} {'multi':>9} {'multi/plain':>12}")
    for name in multi:
        print(f"{name:<50} {single[name]:>9.0f} {multi[name]:>9.0f} {multi[name] / base:>11.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
