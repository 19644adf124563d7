"""Bench scenarios come from the shared generator, found beside the repo or by SGWEB_SHARED_DIR."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sgweb.firewall import benchdata

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
    (tmp_path / "shared" / "bench").mkdir(parents=True)
    (tmp_path / "shared" / "bench" / "gen_scenario.py").write_text(FAKE_GENERATOR)
    monkeypatch.setenv("SGWEB_SHARED_DIR", str(tmp_path / "shared"))
    monkeypatch.setattr(benchdata, "CACHE", tmp_path / "cache")
    argv = list(sys.argv)
    path = benchdata.generated_scenario(7, groups=2, rules=3, seed=5, extra_args=("--no-v6",))
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


def test_a_missing_shared_directory_names_both_places(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SGWEB_SHARED_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(benchdata.SharedDirMissing) as raised:
        benchdata.generated_scenario(5)
    message = str(raised.value)
    assert str(tmp_path / "nowhere") in message
    assert str(benchdata.ROOT.parent / "shared") in message
