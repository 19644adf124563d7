"""Command line: python -m sgweb.kernel bench SCENARIO.json [--host NAME] [--runs N]."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _bench(args: argparse.Namespace) -> int:
    from sgweb.kernel.bench import run_kernel_benchmark

    result = run_kernel_benchmark(args.scenario, host=args.host, runs=args.runs)
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sgweb.kernel",
        description="Kernel-side tools for sgweb (needs root; works in throwaway namespaces).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench = commands.add_parser(
        "bench", help="time full and incremental applies of a scenario in fresh namespaces (JSON)"
    )
    bench.add_argument("scenario", metavar="SCENARIO.json")
    bench.add_argument("--host", default=None, help="only the ports of this host")
    bench.add_argument("--runs", type=int, default=5, help="runs per figure (median reported)")
    bench.set_defaults(handler=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
