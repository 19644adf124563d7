"""Saved digests of the compiler's full output over generated scenarios.

The compiler is tuned for speed (lazy port chains, shared prototypes, render caches); these
digests pin its output to what the straightforward compiler produced, byte for byte, so that
no optimisation can change a rule. A change that is MEANT to change the output (new semantics)
re-saves them, and says so in its commit:

    .venv/bin/python -m tests.firewall.saved_compiles --save
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from bench.scenarios import generated_scenario
from sgweb.firewall.compiler import compile_host
from sgweb.firewall.render import render_ipsets, render_iptables
from sgweb.firewall.scenario import build_scenario_state, scenario_hosts

SAVED = Path(__file__).with_name("saved_compiles.json")

# Generator parameters: both ipset modes, port security off, address pairs, IPv4 only,
# enough ports to pass into 100.64.0.0/10, several seeds.
SCENARIOS: tuple[dict[str, Any], ...] = (
    {"ports": 60, "groups": 6, "rules": 8, "seed": 3, "extra_args": ()},
    {"ports": 80, "groups": 10, "rules": 10, "seed": 7, "extra_args": ("--no-ipset",)},
    {
        "ports": 50,
        "groups": 5,
        "rules": 12,
        "seed": 11,
        "extra_args": ("--psec-off", "5", "--pair-every", "4"),
    },
    {"ports": 40, "groups": 4, "rules": 10, "seed": 5, "extra_args": ("--no-v6",)},
    {"ports": 300, "groups": 12, "rules": 9, "seed": 2, "extra_args": ("--pair-every", "2")},
    {"ports": 30, "groups": 3, "rules": 6, "seed": 13, "extra_args": ("--no-ipset", "--no-v6")},
)


def scenario_name(params: dict[str, Any]) -> str:
    return generated_scenario(
        params["ports"],
        groups=params["groups"],
        rules=params["rules"],
        seed=params["seed"],
        extra_args=params["extra_args"],
    ).name


def digests(params: dict[str, Any]) -> dict[str, str]:
    """sha256 of every host's iptables (both families) and ipset restore text."""
    path = generated_scenario(
        params["ports"],
        groups=params["groups"],
        rules=params["rules"],
        seed=params["seed"],
        extra_args=params["extra_args"],
    )
    document = json.loads(path.read_text())
    found = {}
    for host in scenario_hosts(document):
        compiled = compile_host(build_scenario_state(document, host))
        texts = {
            "v4": render_iptables(compiled, 4),
            "v6": render_iptables(compiled, 6),
            "ipsets": render_ipsets(compiled),
        }
        for kind, text in texts.items():
            found[f"{host or '-'}/{kind}"] = hashlib.sha256(text.encode()).hexdigest()
    return found


def saved() -> dict[str, dict[str, str]]:
    return dict(json.loads(SAVED.read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.firewall.saved_compiles")
    parser.add_argument("--save", action="store_true", help="write today's digests")
    args = parser.parse_args(argv)
    current = {scenario_name(params): digests(params) for params in SCENARIOS}
    if args.save:
        SAVED.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
        print(f"saved {len(current)} scenarios to {SAVED}")
        return 0
    differing = [name for name, value in current.items() if saved().get(name) != value]
    print("differ: " + ", ".join(differing) if differing else "all equal")
    return 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main())
