"""The benchmarks keep working: run them at a tiny size (no timing assertions)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, production_env, server_env


@pytest.mark.django_db(transaction=True)
def test_the_awareness_benchmark_runs_and_reports():
    result = subprocess.run(
        [sys.executable, "bench/awareness.py"],
        cwd=ROOT,
        env={**server_env(), "SAMPLES": "3"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads((ROOT / "bench" / "results" / "awareness.json").read_text())
    assert {name: row["samples"] for name, row in figures.items()} == {
        "typing": 3,
        "presence_online": 3,
        "presence_offline": 3,
    }


@pytest.mark.django_db(transaction=True)
def test_the_archive_benchmark_runs_and_reports():
    result = subprocess.run(
        [sys.executable, "bench/archive.py"],
        cwd=ROOT,
        env={**server_env(), "ROWS": "2000"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads((ROOT / "bench" / "results" / "archive.json").read_text())
    assert figures["rows"] == 2000 and figures["compressed_bytes"] > 0


def run_load(out, *args: str, timeout: float) -> None:
    """bench/load.py at the smoke size through the production entry point, its results in `out`."""
    result = subprocess.run(
        [sys.executable, "bench/load.py", "--smoke", *args, "--out", str(out)],
        cwd=ROOT,
        env=production_env(static_root=out / "static"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]


@pytest.mark.django_db(transaction=True)
def test_the_load_benchmark_runs_every_scenario_without_loss(tmp_path):
    """Every scenario at a tiny size through the production entry point: nothing lost, nothing
    twice, nothing out of order, and the report is written. Timings are not checked here."""
    run_load(tmp_path, timeout=600)
    figures = json.loads((tmp_path / "results.json").read_text())
    assert set(figures["scenarios"]) == {"chat", "fanout", "connections", "ramp", "connect", "sse"}
    for name in ("chat", "fanout", "ramp"):
        for step in figures["scenarios"][name]["steps"]:
            assert step["persisted"] == step["sent"] > 0, (name, step)
            assert step["deliveries"] == step["expected_deliveries"] > 0, (name, step)
            assert (step["lost"], step["duplicates"], step["reordered"], step["errors"]) == (0, 0, 0, {}), (name, step)
    sse = figures["scenarios"]["sse"]  # half the clients on Server-Sent Events: they get everything too
    assert sse["persisted"] == sse["sent"] > 0 and sse["deliveries"] == sse["expected_deliveries"], sse
    assert (sse["lost"], sse["duplicates"], sse["reordered"], sse["errors"]) == (0, 0, 0, {}), sse
    assert sse["sse_latency_ms"]["deliveries"] == sse["socket_latency_ms"]["deliveries"] > 0, sse
    connections = figures["scenarios"]["connections"]
    assert connections["connected"] == connections["sockets"]
    connect = figures["scenarios"]["connect"]
    assert connect["ticket"]["connects_per_s"] > 0 and connect["cookie"]["connects_per_s"] > 0
    assert connect["bare"]["connects_per_s"] > 0 and set(connect["of_bare"]) == {"ticket", "bearer", "cookie"}
    assert connect["errors"] == {}
    assert (tmp_path / "report.md").read_text().startswith("# Load benchmark")
    assert (tmp_path / "latency.png").stat().st_size > 0


@pytest.mark.django_db(transaction=True)
def test_the_load_benchmark_compares_the_mix_with_plain_chat_in_one_run(tmp_path):
    """`--alternate` (issue 16's clause): a plain and a mixed phase in turn on the same sockets,
    each without loss, and the comparison in the results and the report; with `--rest-burst`,
    rooms lists asked beside them, all answered."""
    run_load(tmp_path, "--scenario", "chat", "--mix", "0.2", "--alternate", "1", "--rest-burst", "3", timeout=300)
    chat = json.loads((tmp_path / "results.json").read_text())["scenarios"]["chat"]
    plain, mixed = chat["steps"]
    assert ("mix" not in plain, mixed["mix"]) == (True, 0.2)
    for step in (plain, mixed):
        assert step["deliveries"] == step["expected_deliveries"] > 0, step
        assert step["rest_burst"] == 3 and step["rest_latency"]["requests"] % 3 == 0, step
        assert step["rest_latency"]["requests"] > 0 and step["rest_latency"]["p50_ms"] > 0, step
        assert (step["lost"], step["duplicates"], step["reordered"], step["errors"]) == (0, 0, 0, {}), step
        # The servers' own commit-to-hand-over figure (their /metrics), for every change the phase made.
        assert step["server_delivery"]["events"] >= step["persisted"] and step["server_delivery"]["mean_ms"] > 0, step
    assert plain["persisted"] == plain["sent"] > 0
    assert mixed["persisted"] > mixed["sent"] > 0  # the replies' reactions and roots took numbers too
    assert mixed["reply_latency_ms"]["p50"] > 0 and mixed["other_latency_ms"]["p50"] > 0
    comparison = chat["mix_comparison"]
    for key in ("p50_ms", "p99_ms", "cpu_ms_per_message"):
        expected = round(comparison["mix"][key] / comparison["plain"][key], 3)
        assert comparison["mix_over_plain"][key] == expected
    assert comparison["mix"]["server_delivery_mean_ms"] == mixed["server_delivery"]["mean_ms"]
    assert "Mix against plain chat" in (tmp_path / "report.md").read_text()


def run_bench_script(script: str, size: int) -> list[str]:
    """A benchmark of bench/ run at a smoke size against the test database: its output's lines."""
    result = subprocess.run(
        [sys.executable, script, str(size)],
        cwd=ROOT,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


@pytest.mark.django_db(transaction=True)
def test_the_mix_batch_benchmark_runs_every_kind_of_batch():
    lines = run_bench_script("bench/mix_batch.py", 100)
    kinds = [line.split(" wall ")[0].strip() for line in lines if "(n=100)" in line]
    assert kinds == ["plain", "reply", "shared", "shared, lock planned"]


@pytest.mark.django_db(transaction=True)
def test_the_in_process_benchmark_counts_tickets_rooms_lists_and_connects():
    lines = run_bench_script("bench/inprocess.py", 40)
    assert [line.split(":")[0] for line in lines if line.endswith("n=40")] == [
        "ticket",
        "rooms",
        "rooms alone",
        "connect",
    ]
