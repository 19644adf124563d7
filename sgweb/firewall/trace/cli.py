"""`python -m sgweb.firewall trace`: trace one packet through a host compiled from a scenario.

The text output reads like an annotated `iptables -L` walk: each chain the packet enters, each
rule tried with its position, whether it matched and what it is for, then the verdict and the
sentence that explains it. `--json` prints the same as data for scripts and checks.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from sgweb.firewall import names
from sgweb.firewall.compiler import compile_host  # the compiler's; imported when used
from sgweb.firewall.ir import (
    ACCEPT,
    DROP,
    ORIGIN_CONNTRACK_ZONE,
    ORIGIN_JUMP,
    ORIGIN_NOTRACK,
    ORIGIN_PORT_SECURITY_OFF,
    Origin,
)
from sgweb.firewall.model import COMPATS, HostState, Port
from sgweb.firewall.render import render_rule
from sgweb.firewall.scenario import load_scenario
from sgweb.firewall.trace.explain import Explanation, explain
from sgweb.firewall.trace.flow import port_address, trace_reply
from sgweb.firewall.trace.serial import trace_json
from sgweb.firewall.trace.tracer import (
    CT_STATES,
    HOOK_FORWARD,
    HOOK_OUTPUT,
    HOOKS,
    STEP_POLICY,
    STEP_RETURN,
    Packet,
    Trace,
    TraceError,
    trace,
)

_PORT_NAMED_KINDS = frozenset(
    {ORIGIN_JUMP, ORIGIN_PORT_SECURITY_OFF, ORIGIN_CONNTRACK_ZONE, ORIGIN_NOTRACK}
)


def origin_text(origin: Origin, state: HostState | None = None) -> str:
    """What a rule is for, briefly: the per-port chain header already names the port, so the
    port is only spelled out on the plumbing that leads there."""
    words = [origin.kind]
    if origin.port_id and origin.kind in _PORT_NAMED_KINDS:
        port = _port(state, origin.port_id)
        words.append(f"port {port.name if port is not None and port.name else origin.port_id}")
    if origin.direction:
        words.append(origin.direction)
    if origin.group_id:
        group = state.group(origin.group_id) if state is not None else None
        words.append(f"group {group.name if group is not None and group.name else origin.group_id}")
    if origin.rule_id:
        words.append(f"rule {origin.rule_id}")
    if origin.member:
        words.append(f"member {origin.member}")
    return " ".join(words)


def format_trace(result: Trace, explanation: Explanation, state: HostState | None = None) -> str:
    packet = result.packet
    lines = [f"packet: {describe(packet)}"]
    if result.notrack:
        lines.append("conntrack: untracked (CT --notrack)")
    elif result.zone is not None:
        lines.append(f"conntrack: zone {result.zone}, state {result.ct_state}")
    if result.ct_reason:
        lines.append(f"conntrack: {result.ct_reason}")
    previous: tuple[str, str, int] | None = None
    for step in result.path:
        indent = "  " * step.depth
        where = (step.table, step.chain, step.depth)
        if where != previous:
            lines.append(f"{indent}{step.table}:{step.chain}")
            previous = where
        if step.skipped:
            plural = "s" if step.skipped > 1 else ""
            lines.append(f"{indent}  ... {step.skipped} rule{plural} for other ports skipped")
        if step.event == STEP_RETURN:
            lines.append(f"{indent}  end of chain: return")
        elif step.event == STEP_POLICY:
            verdict = result.verdict if step is result.deciding else "ACCEPT (on to the next table)"
            lines.append(f"{indent}  policy {verdict}")
        elif step.rule is not None:
            mark = "match" if step.matched else "     "
            text = render_rule(step.rule)
            note = origin_text(step.rule.origin, state)
            lines.append(f"{indent}  {step.position:>4} {mark} {text}  # {note}")
    lines.append(f"verdict: {result.verdict}")
    lines.append(f"why: {explanation.text}")
    return "\n".join(lines)


def describe(packet: Packet) -> str:
    words = [f"IPv{packet.family}", str(packet.protocol or "any protocol")]
    words.append(f"{packet.src or '*'}{':' + str(packet.sport) if packet.sport else ''}")
    words.append("->")
    words.append(f"{packet.dst or '*'}{':' + str(packet.dport) if packet.dport else ''}")
    if packet.is_icmp:
        words.append(f"type {packet.effective_icmp_type} code {packet.effective_icmp_code}")
    if packet.src_mac:
        words.append(f"from MAC {packet.src_mac}")
    if packet.physdev_in:
        words.append(f"physdev-in {packet.physdev_in}")
    if packet.physdev_out:
        words.append(f"physdev-out {packet.physdev_out}")
    if packet.in_interface:
        words.append(f"in {packet.in_interface}")
    words.append(f"hook {packet.hook} state {packet.ct_state}")
    return " ".join(words)


# --- command line ------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add the `trace` command to the `python -m sgweb.firewall` parser's subparsers."""
    parser = subparsers.add_parser(
        "trace",
        help="trace one packet through a host's compiled firewall",
        description="Walk a packet through the iptables chains compiled for one host and say "
        "why it is allowed or dropped, in security-group terms.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def add_compat_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--compat",
        choices=COMPATS,
        default=None,
        help="layout variant: neutron (current Neutron's DHCP order, the default) or article "
        "(the article's layout line for line); default: the scenario's own, else neutron",
    )


def with_compat(state: HostState, compat: str | None) -> HostState:
    """The state with the layout variant the command line asked for, if it asked."""
    return state if compat is None else dataclasses.replace(state, compat=compat)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", help="scenario JSON file (format: bench/README.md)")
    parser.add_argument("--host", help="the compute host whose firewall to trace")
    add_compat_argument(parser)
    packet = parser.add_argument_group("packet")
    packet.add_argument("--src", help="source address")
    packet.add_argument("--dst", help="destination address")
    packet.add_argument("--src-mac", help="source MAC (the anti-spoofing chain checks it)")
    packet.add_argument("--dst-mac")
    packet.add_argument("--protocol", "-p", help="name or number: tcp, udp, icmp, 58, ...")
    packet.add_argument("--sport", type=int)
    packet.add_argument("--dport", type=int)
    packet.add_argument("--icmp-type", type=int, help="default for ICMP: echo request")
    packet.add_argument("--icmp-code", type=int)
    packet.add_argument("--tcp-flags", help="e.g. SYN,ACK (default: SYN)")
    packet.add_argument(
        "--sctp-chunk",
        choices=("INIT", "INIT-ACK"),
        help="the SCTP chunk (default: INIT; conntrack opens an association with it alone)",
    )
    packet.add_argument("--physdev-in", metavar="TAP", help="bridge port the packet enters by")
    packet.add_argument("--physdev-out", metavar="TAP", help="bridge port the packet leaves by")
    packet.add_argument("--in-interface", metavar="DEV", help="input device (the bridge)")
    packet.add_argument(
        "--from-port", metavar="PORT", help="the packet leaves this port (id, name or device)"
    )
    packet.add_argument(
        "--to-port", metavar="PORT", help="the packet reaches this port (id, name or device)"
    )
    packet.add_argument(
        "--state",
        default="NEW",
        type=str.upper,
        choices=CT_STATES,
        help="conntrack state (default NEW)",
    )
    packet.add_argument("--hook", default=HOOK_FORWARD, type=str.upper, choices=HOOKS)
    packet.add_argument("--family", type=int, choices=(4, 6), help="default: from the addresses")
    parser.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="CHAIN=VERDICT",
        help="a built-in chain's policy when not ACCEPT, e.g. FORWARD=DROP (repeatable)",
    )
    parser.add_argument(
        "--reply",
        action="store_true",
        help="when allowed, also trace the reply (swapped, ESTABLISHED) through this host",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _port(state: HostState | None, key: str) -> Port | None:
    if state is None:
        return None
    matches = []
    for port in state.ports:
        device = port.device or names.device_name(port.id)
        if key in (port.id, device) or (port.name and key == port.name):
            return port
        if len(key) >= 8 and port.id.startswith(key):
            matches.append(port)
    return matches[0] if len(matches) == 1 else None


def _from_port(fields: dict[str, Any], source: Port, family: int | None, alone: bool) -> None:
    """What --from-port says about the packet's source; `alone`: forwarded, no --to-port."""
    fields["src"] = fields["src"] or port_address(source, family)
    fields["src_mac"] = fields["src_mac"] or source.mac_address
    fields["physdev_in"] = fields["physdev_in"] or source.device or names.device_name(source.id)
    if alone and fields["physdev_out"] is None:
        # One bridge per port: the packet leaves qbr through the port's veth (qvb...).
        fields["physdev_out"] = names.veth_name(source.id)


def _to_port(
    fields: dict[str, Any], destination: Port, family: int | None, forwarded: bool
) -> None:
    fields["dst"] = fields["dst"] or port_address(destination, family)
    fields["dst_mac"] = fields["dst_mac"] or destination.mac_address
    if forwarded:
        device = destination.device or names.device_name(destination.id)
        fields["physdev_out"] = fields["physdev_out"] or device
        if fields["physdev_in"] is None:
            fields["physdev_in"] = names.veth_name(destination.id)


def _bridge_ports(fields: dict[str, Any], state: HostState, forwarded: bool) -> None:
    if forwarded and (fields["physdev_in"] is None) != (fields["physdev_out"] is None):
        # A forwarded bridged frame always has both bridge ports; with one port per qbr, the
        # other one is the port's qvb veth.
        given = fields["physdev_in"] or fields["physdev_out"]
        port = _port(state, given)
        if port is not None:
            side = "physdev_out" if fields["physdev_out"] is None else "physdev_in"
            fields[side] = names.veth_name(port.id)
    if fields["src_mac"] is None and fields["physdev_in"] is not None:
        # Entering from a VM's tap without a MAC given: the VM's own MAC is what it sends.
        port = _port(state, fields["physdev_in"])
        if port is not None:
            fields["src_mac"] = port.mac_address


def build_packet(args: argparse.Namespace, state: HostState) -> Packet:
    """The packet the options describe; --from-port / --to-port fill in what is not given."""
    family = args.family
    for address in (args.src, args.dst):
        if family is None and address:
            family = ipaddress.ip_address(address).version
    fields: dict[str, Any] = {
        "src": args.src,
        "dst": args.dst,
        "src_mac": args.src_mac,
        "dst_mac": args.dst_mac,
        "protocol": args.protocol,
        "sport": args.sport,
        "dport": args.dport,
        "icmp_type": args.icmp_type,
        "icmp_code": args.icmp_code,
        "physdev_in": args.physdev_in,
        "physdev_out": args.physdev_out,
        "in_interface": args.in_interface,
        "hook": args.hook,
        "ct_state": args.state,
        "family": family,
        "tcp_flags": args.tcp_flags,
        "sctp_chunk": args.sctp_chunk,
    }
    forwarded = args.hook == HOOK_FORWARD
    source = _lookup(state, args.from_port, "--from-port")
    destination = _lookup(state, args.to_port, "--to-port")
    if source is not None:
        _from_port(fields, source, family, forwarded and destination is None)
    if destination is not None:
        _to_port(fields, destination, family, forwarded)
    _bridge_ports(fields, state, forwarded)
    if fields["in_interface"] is None and args.hook != HOOK_OUTPUT:
        # Bridged traffic reaches the IP hooks with the bridge as its input device; the raw
        # table's per-bridge conntrack zone rules match on it.
        bridged = destination or source
        if bridged is not None and bridged.bridge:
            fields["in_interface"] = bridged.bridge
    return Packet(**fields)


def _policies(options: Sequence[str]) -> dict[str, str]:
    policies = {}
    for option in options:
        chain, _, verdict = option.partition("=")
        verdict = verdict.strip().upper()
        if not chain or verdict not in (ACCEPT, DROP):
            raise TraceError(f"--policy {option}: expected CHAIN=ACCEPT or CHAIN=DROP")
        policies[chain.strip().upper()] = verdict
    return policies


def _lookup(state: HostState, key: str | None, option: str) -> Port | None:
    if key is None:
        return None
    port = _port(state, key)
    if port is None:
        raise TraceError(f"{option} {key}: no such port on this host")
    return port


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout

    try:
        state = with_compat(load_scenario(args.scenario, host=args.host), args.compat)
        packet = build_packet(args, state)
        compiled = compile_host(state)
        policies = _policies(args.policy)
        result = trace(compiled, packet, policies=policies)
    except (TraceError, ValueError, OSError) as error:
        print(f"trace: {error}", file=sys.stderr)
        return 2
    explanation = explain(result, state)
    answer = None
    if args.reply and result.verdict == ACCEPT:
        answer = trace_reply(compiled, result, policies=policies)
    if args.json:
        data = trace_json(result, explanation)
        if answer is not None:
            data["reply"] = trace_json(answer, explain(answer, state))
        json.dump(data, out, indent=2)
        out.write("\n")
    else:
        out.write(format_trace(result, explanation, state) + "\n")
        if answer is not None:
            out.write("\nreply\n" + format_trace(answer, explain(answer, state), state) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sgweb.firewall.trace.cli")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
