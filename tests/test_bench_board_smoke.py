"""The boards benchmark keeps working: every scenario at a tiny size through `bench/board.py
--smoke` (no timing assertions: the figures go to docs/performance.md)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, production_env


@pytest.mark.django_db(transaction=True)
def test_the_board_benchmark_runs_every_scenario_without_loss(tmp_path):
    result = subprocess.run(
        [sys.executable, "bench/board.py", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        env=production_env(static_root=tmp_path / "static"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    figures = json.loads((tmp_path / "board.json").read_text())["scenarios"]
    assert set(figures) == {"editors", "boards", "compaction", "export"}

    editors = figures["editors"]
    assert editors["updates_persisted"] == editors["updates_sent"] > 0
    assert editors["update_deliveries"] == editors["expected_update_deliveries"] > 0
    assert editors["cursor_deliveries"] > 0
    assert (editors["lost_numbers"], editors["duplicates"], editors["errors"]) == (0, 0, {})
    assert editors["converged"] == editors["editors"]

    boards = figures["boards"]
    assert boards["updates_persisted"] == boards["updates_sent"] > 0
    assert (boards["lost_numbers"], boards["duplicates"], boards["errors"]) == (0, 0, {})

    compaction = figures["compaction"]
    assert compaction["same_rendering"] and compaction["snapshot_bytes"] > 0
    assert compaction["replay_sequence"] == compaction["updates"] // 2 + 499

    assert figures["export"]["export_bytes"] > 0
    assert (tmp_path / "board.md").read_text().startswith("# Boards benchmark")
