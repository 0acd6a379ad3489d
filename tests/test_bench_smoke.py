"""The benchmarks keep working: run them at a tiny size (no timing assertions)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, server_env


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
