"""Command line: python -m sgweb.firewall compile|ipsets|trace SCENARIO.json ..."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sgweb.firewall.compiler import compile_host
from sgweb.firewall.errors import FirewallError
from sgweb.firewall.model import HostState
from sgweb.firewall.render import render_ipsets, render_iptables
from sgweb.firewall.scenario import load_scenario
from sgweb.firewall.trace import cli as trace_cli
from sgweb.firewall.trace.cli import with_compat


def _state(args: argparse.Namespace) -> HostState:
    return with_compat(load_scenario(args.scenario, args.host), args.compat)


def _compile(args: argparse.Namespace) -> int:
    compiled = compile_host(_state(args))
    sys.stdout.write(render_iptables(compiled, args.family))
    return 0


def _ipsets(args: argparse.Namespace) -> int:
    compiled = compile_host(_state(args))
    sys.stdout.write(render_ipsets(compiled))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sgweb.firewall",
        description="Compile security groups into iptables/ipset state, trace packets.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    compile_ = commands.add_parser("compile", help="print iptables-restore input for one family")
    compile_.add_argument("scenario", metavar="SCENARIO.json")
    compile_.add_argument("--host", default=None, help="only the ports of this host")
    compile_.add_argument("--family", type=int, choices=(4, 6), default=4)
    trace_cli.add_compat_argument(compile_)
    compile_.set_defaults(handler=_compile)

    ipsets = commands.add_parser("ipsets", help="print ipset restore input")
    ipsets.add_argument("scenario", metavar="SCENARIO.json")
    ipsets.add_argument("--host", default=None, help="only the sets this host's rules use")
    trace_cli.add_compat_argument(ipsets)
    ipsets.set_defaults(handler=_ipsets)

    trace_cli.register(commands)
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
