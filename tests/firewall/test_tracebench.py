"""The trace benchmark runs end to end on a small generated scenario (no timing asserts)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.scenarios import generated_scenario
from bench.trace import main


def test_benchmark_prints_the_figures_for_a_generated_scenario(tmp_path: Path, capsys):
    scenario = generated_scenario(30, groups=4, rules=8, seed=3)
    assert main([str(scenario), "--runs", "40"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["ports"] >= 1
    for key in ("trace", "trace_and_explain", "flow_with_reply"):
        assert set(figures[key]) == {"median_ms", "p95_ms", "max_ms"}
