"""`make bench-search` and `make bench-format` keep working: run at a tiny size (no timing assertions)."""

import json
import subprocess
import sys

import pytest

from messaging import archive
from tests.conftest import ROOT, server_env


@pytest.mark.django_db(transaction=True)
def test_the_search_benchmark_runs_reports_and_cleans_up():
    before = archive.partition_days()
    result = subprocess.run(
        [sys.executable, "bench/search.py"],
        cwd=ROOT,
        env={**server_env(), "ROWS": "2000", "ROOMS": "40", "DAYS": "3", "REPEAT": "2"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads((ROOT / "bench" / "results" / "search.json").read_text())
    assert figures["rows"] == 2000
    assert set(figures["kinds"]) == {"common", "typical", "rare", "two words", "phrase", "in one room"}
    assert figures["kinds"]["common"]["sample_matches_all_rooms"] > 0
    assert archive.partition_days() == before


@pytest.mark.django_db(transaction=True)
def test_the_formatting_benchmark_runs_and_reports():
    result = subprocess.run(
        [sys.executable, "bench/formatting.py"],
        cwd=ROOT,
        env={**server_env(), "SENDS_PER_BLOCK": "5", "BLOCKS_EACH": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads((ROOT / "bench" / "results" / "formatting.json").read_text())
    assert figures["render_us_per_message_corpus"] > 0
