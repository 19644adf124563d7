"""Command line: python -m sgweb.firewall compile|ipsets|bench|trace SCENARIO.json ..."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from sgweb.firewall.errors import FirewallError


def _compile(args: argparse.Namespace) -> int:
    from sgweb.firewall.compiler import compile_host
    from sgweb.firewall.render import render_iptables
    from sgweb.firewall.scenario import load_scenario

    compiled = compile_host(load_scenario(args.scenario, args.host))
    sys.stdout.write(render_iptables(compiled, args.family))
    return 0


def _ipsets(args: argparse.Namespace) -> int:
    from sgweb.firewall.compiler import compile_host
    from sgweb.firewall.render import render_ipsets
    from sgweb.firewall.scenario import load_scenario

    compiled = compile_host(load_scenario(args.scenario, args.host))
    sys.stdout.write(render_ipsets(compiled))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from sgweb.firewall.bench import run_benchmark

    result = run_benchmark(args.scenario, runs=args.runs)
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sgweb.firewall",
        description="Compile security groups into iptables/ipset state, benchmark, trace.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    compile_ = commands.add_parser("compile", help="print iptables-restore input for one family")
    compile_.add_argument("scenario", metavar="SCENARIO.json")
    compile_.add_argument("--host", default=None, help="only the ports of this host")
    compile_.add_argument("--family", type=int, choices=(4, 6), default=4)
    compile_.set_defaults(handler=_compile)

    ipsets = commands.add_parser("ipsets", help="print ipset restore input")
    ipsets.add_argument("scenario", metavar="SCENARIO.json")
    ipsets.add_argument("--host", default=None, help="only the sets this host's rules use")
    ipsets.set_defaults(handler=_ipsets)

    bench = commands.add_parser("bench", help="time full and incremental compiles (JSON)")
    bench.add_argument("scenario", metavar="SCENARIO.json")
    bench.add_argument("--runs", type=int, default=7, help="runs per figure (median reported)")
    bench.set_defaults(handler=_bench)

    try:
        from sgweb.firewall import tracecli
    except ImportError:
        tracecli = None  # type: ignore[assignment]
    if tracecli is not None:
        tracecli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except FirewallError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
