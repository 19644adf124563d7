"""Bench scenarios come from the generator the repository carries (bench/gen_scenario.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench import scenarios as benchdata

FAKE_GENERATOR = """
import argparse, json, sys
parser = argparse.ArgumentParser()
for name in ("--ports", "--groups", "--rules", "--seed"):
    parser.add_argument(name, type=int)
parser.add_argument("--no-v6", action="store_true")
parser.add_argument("-o")
args = parser.parse_args()
with open(args.o, "w") as out:
    json.dump({"argv": sys.argv[1:], "ports": args.ports, "no_v6": args.no_v6}, out)
"""


def test_the_generator_runs_in_process_once_per_parameters(tmp_path: Path, monkeypatch):
    generator = tmp_path / "gen_scenario.py"
    generator.write_text(FAKE_GENERATOR)
    monkeypatch.setattr(benchdata, "CACHE", tmp_path / "cache")
    argv = list(sys.argv)
    path = benchdata.generated_scenario(
        7, groups=2, rules=3, seed=5, extra_args=("--no-v6",), generator=generator
    )
    assert sys.argv == argv
    document = json.loads(path.read_text())
    assert document["ports"] == 7 and document["no_v6"] is True
    assert document["argv"][:8] == ["--ports", "7", "--groups", "2", "--rules", "3", "--seed", "5"]
    path.write_text("{}")  # cached: not generated again
    assert (
        benchdata.generated_scenario(7, groups=2, rules=3, seed=5, extra_args=("--no-v6",)) == path
    )
    assert path.read_text() == "{}"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [path.name]


def test_the_repository_carries_the_generator_and_its_format(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(benchdata, "CACHE", tmp_path / "cache")
    assert benchdata.GENERATOR.parent == benchdata.ROOT / "bench"
    assert "## Format" in (benchdata.ROOT / "bench" / "README.md").read_text()
    document = json.loads(benchdata.generated_scenario(5, groups=2, rules=2, seed=1).read_text())
    assert len(document["ports"]) == 5 and len(document["security_groups"]) == 2
