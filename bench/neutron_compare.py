"""`python -m bench.neutron_compare SCENARIO.json`: Neutron's hybrid iptables driver, same scenario.

Neutron is not a dependency of sgweb: the first run makes a virtualenv of its own
(var/bench/neutron-venv, `pip install neutron==NEUTRON_VERSION`, a few minutes) and runs
`bench/neutron_side.py` there, which drives Neutron's OVSHybridIptablesFirewallDriver with every
command captured (no kernel). `python -m bench.compile SCENARIO.json --neutron` prints both
sides from one run, so the ratio is measured under the same load.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.scenarios import CACHE

NEUTRON_VERSION = "29.0.0"
VENV = CACHE / "neutron-venv"
SIDE = Path(__file__).resolve().with_name("neutron_side.py")


def neutron_python() -> Path:
    """The virtualenv's python, made on first use."""
    python = VENV / "bin" / "python"
    stamp = VENV / f".neutron-{NEUTRON_VERSION}"
    if not stamp.exists():
        VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"neutron=={NEUTRON_VERSION}"], check=True
        )
        stamp.touch()
    return python


def run_neutron(scenario: str | Path, runs: int = 3) -> dict[str, Any]:
    completed = subprocess.run(
        [str(neutron_python()), "-I", str(SIDE), str(scenario), str(runs)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.neutron_compare", description=__doc__)
    parser.add_argument("scenario", metavar="SCENARIO.json")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(run_neutron(args.scenario, args.runs), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
