"""Put a router's compiled firewall into its namespace, read its counters back (issue 16).

The router namespace's filter table is ours alone (the L3 agent's iptables manager treats it so),
which makes applying simple: the first apply, and any repair, restores the whole table per family
(`iptables-restore` without --noflush, one atomic commit each, counters carried over from the
table it replaces); later applies send only the chains that changed (`--noflush`, see
`compiler.render_delta`), so unchanged chains keep their counters. IPv4 goes first; if IPv6 then
fails, IPv4 is put back (the reverse delta, or the saved table), so the previous rules stay in
force in both families and the report quotes the line the kernel refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sgweb.firewall.fwaas.compiler import FAMILIES, CompiledFamily, CompiledRouter, RuleOrigin
from sgweb.firewall.fwaas.compiler import render_delta as fwaas_render_delta
from sgweb.firewall.fwaas.compiler import render_full as fwaas_render_full
from sgweb.firewall.fwaas.model import RouterState
from sgweb.firewall.fwaas.trace import ACCEPT, trace_router
from sgweb.firewall.trace.packet import Packet, TraceError
from sgweb.kernel.apply import ApplyReport, offending_line
from sgweb.kernel.carry import carry_ipv6_counters, read_carry, restore_argv, with_counters
from sgweb.kernel.ctnetlink import ConntrackTable, Tracked
from sgweb.kernel.readback import Counter, save_command
from sgweb.kernel.runner import CommandResult, CommandRunner

log = logging.getLogger(__name__)

EMPTY_FILTER = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"


@dataclass(frozen=True, slots=True)
class RuleHits:
    """One firewall rule's kernel counter in one policy chain (a rule used by several groups or
    in both directions has several)."""

    origin: RuleOrigin
    chain: str
    counter: Counter


class RouterFirewall:
    """The filter table of one router namespace."""

    def __init__(self, runner: CommandRunner, netns: str) -> None:
        self.runner = runner
        self.netns = netns

    def _run(
        self, argv: Sequence[str], *, input: str | None = None, check: bool = True
    ) -> CommandResult:
        return self.runner.run(argv, input=input, netns=self.netns, check=check, timeout=300)

    # -- applying ----------------------------------------------------------------------------

    def apply(
        self, compiled: CompiledRouter, previous: CompiledRouter | None = None
    ) -> ApplyReport:
        """Apply `compiled`; with `previous` (what is in force now) only the changed chains."""
        started = time.perf_counter()
        steps: list[tuple[str, float]] = []
        texts: list[tuple[int, str, str]] = []  # family, restore input, rollback input
        for family in FAMILIES:
            new = compiled.family(family)
            if previous is None:
                texts.append((family, "", ""))  # filled in below, after reading counters
            else:
                old = previous.family(family)
                texts.append((family, fwaas_render_delta(old, new), fwaas_render_delta(new, old)))
        if previous is None:
            texts = [self._full_texts(compiled.family(f), steps) for f, _, _ in texts]
        rule_lines: dict[int, int] = {}
        chain_lines: dict[int, int] = {}
        applied: list[tuple[int, str]] = []
        carried_warnings: list[str] = []
        for family, text, rollback in texts:
            if not text:
                continue
            rule_lines[family], chain_lines[family] = _count_lines(text)
            options = ("--noflush",) if previous is not None else ()
            step_started = time.perf_counter()
            result = self._run(restore_argv(family, text, *options), input=text, check=False)
            steps.append((f"iptables.{family}", time.perf_counter() - step_started))
            if result.returncode != 0:
                number, line = offending_line(result.stderr, text)
                rolled_back, warnings = self._roll_back(applied, previous is not None, steps)
                return ApplyReport(
                    ok=False,
                    duration_s=time.perf_counter() - started,
                    steps=tuple(steps),
                    rule_lines=rule_lines,
                    chain_lines=chain_lines,
                    ipset_lines=0,
                    error=result.stderr.strip() or f"exit status {result.returncode}",
                    failed_step=f"iptables.{family}",
                    offending_line_number=number or None,
                    offending_line=line or None,
                    rolled_back=rolled_back,
                    warnings=tuple(warnings),
                )
            applied.append((family, rollback))
            carried_warnings += carry_ipv6_counters(
                self.netns, family, text, whole_tables=not options
            )
        return ApplyReport(
            ok=True,
            duration_s=time.perf_counter() - started,
            steps=tuple(steps),
            rule_lines=rule_lines,
            chain_lines=chain_lines,
            ipset_lines=0,
            warnings=tuple(carried_warnings),
        )

    def _full_texts(
        self, compiled: CompiledFamily, steps: list[tuple[str, float]]
    ) -> tuple[int, str, str]:
        family = compiled.family
        step_started = time.perf_counter()
        saved = self._run([save_command(family), "-c", "-t", "filter"], check=False)
        carried = read_carry_from(saved.stdout) if saved.returncode == 0 else {}
        steps.append((f"save.{family}", time.perf_counter() - step_started))
        text = with_counters(fwaas_render_full(compiled), carried)
        # The table as it was, counters and all: what a failed later family puts back.
        # A namespace that never had a filter table saves as nothing: put back an empty one.
        rollback = saved.stdout if saved.returncode == 0 and saved.stdout.strip() else EMPTY_FILTER
        return family, text, rollback

    def _roll_back(
        self, applied: list[tuple[int, str]], incremental: bool, steps: list[tuple[str, float]]
    ) -> tuple[bool, list[str]]:
        warnings: list[str] = []
        ok = bool(applied)
        for family, text in applied:
            if not text.strip():
                continue
            options = ("--noflush",) if incremental else ()
            step_started = time.perf_counter()
            result = self._run(restore_argv(family, text, *options), input=text, check=False)
            steps.append((f"rollback.{family}", time.perf_counter() - step_started))
            if result.returncode != 0:
                ok = False
                warnings.append(f"rollback of IPv{family} failed: {result.stderr.strip()}")
        return ok, warnings

    # -- reading back ---------------------------------------------------------------------------

    def saved_chains(self, family: int) -> dict[str, list[str]]:
        """chain -> its rule specs as the kernel prints them (`iptables-save -t filter`)."""
        saved = self._run([save_command(family), "-t", "filter"]).stdout
        chains: dict[str, list[str]] = {}
        for line in saved.splitlines():
            if line.startswith(":"):
                chains.setdefault(line[1:].split(" ", 1)[0], [])
            elif line.startswith("-A "):
                _, chain, *rest = line.split(" ", 2)
                chains.setdefault(chain, []).append(rest[0] if rest else "")
        return chains

    def drift(self, compiled: CompiledRouter) -> list[tuple[int, str]]:
        """(family, chain) of every compiled chain the kernel holds differently or not at all;
        [] when the kernel matches. A full apply repairs whatever is listed."""
        drifted = []
        for family in FAMILIES:
            kernel = self.saved_chains(family)
            for name, specs in compiled.family(family).chains:
                if kernel.get(name) != list(specs):
                    drifted.append((family, name))
            wanted_forward = ["-j neutron-filter-top", "-j neutron-l3-agent-FORWARD"]
            if kernel.get("FORWARD", [])[:2] != wanted_forward:
                drifted.append((family, "FORWARD"))
        return drifted

    # -- connections -----------------------------------------------------------------------------

    def flows(self) -> list[Flow]:
        """The router's tracked connections, read over ctnetlink in its namespace (no process)."""
        with ConntrackTable(self.netns) as table:
            return [flow for flow, _ in self._tracked(table)]

    def _tracked(self, table: ConntrackTable) -> list[tuple[Flow, Tracked]]:
        tracked = []
        for family in FAMILIES:
            try:
                entries = table.entries(family)
            except OSError as exc:
                log.warning("router %s: cannot read IPv%d connections: %s", self.netns, family, exc)
                continue
            for entry in entries:
                flow = flow_of(entry)
                if flow is not None:
                    tracked.append((flow, entry))
        return tracked

    def cut_denied_connections(self, state: RouterState) -> list[Flow]:
        """Delete the conntrack entries of connections the firewall now in force would not
        let start: otherwise they would go on as ESTABLISHED through a new deny. Neutron's
        driver deletes entries after a change too; deciding per connection with the tracer
        keeps the allowed ones. Traffic to and from the router itself is left alone. Read and
        cut over ctnetlink in the router's namespace, like a port's cuts (`kernel.conntrack`):
        one socket, not a `conntrack` process per listing and per delete (`kernel.ctnetlink`)."""
        own = {interface.ip_address for interface in state.router.interfaces}
        cut = []
        with ConntrackTable(self.netns) as table:
            for flow, entry in self._tracked(table):
                if flow.src in own or flow.dst in own:
                    continue
                try:
                    verdict = trace_router(state, flow.packet()).verdict
                except TraceError:
                    continue  # not routed between two of this router's subnets
                if verdict == ACCEPT:
                    continue
                error = table.delete(entry)
                if error:
                    log.warning("router %s: %s", self.netns, error)
                else:
                    cut.append(flow)
        return cut

    def rule_hits(self, compiled: CompiledRouter) -> list[RuleHits]:
        """The counter of every firewall rule in every policy chain, one save per family."""
        hits = []
        for family in FAMILIES:
            compiled_family = compiled.family(family)
            if not compiled_family.origins:
                continue
            saved = self._run([save_command(family), "-c", "-t", "filter"]).stdout
            position: dict[str, int] = {}
            for line in saved.splitlines():
                if not line.startswith("["):
                    continue
                counts, rule = line.split(" ", 1)
                chain = rule.split(" ", 2)[1]
                index = position.get(chain, 0)
                position[chain] = index + 1
                origin = compiled_family.origins.get((chain, index))
                if origin is not None:
                    packets, size = counts.strip("[]").split(":")
                    hits.append(RuleHits(origin, chain, Counter(int(packets), int(size))))
        return hits


def _count_lines(text: str) -> tuple[int, int]:
    """(rule lines -A/-I/-D, chain lines :/-X) of restore input, counters or not."""
    rules = chains = 0
    for line in text.splitlines():
        if line.startswith("["):
            line = line.split(" ", 1)[-1]
        if line[:3] in ("-A ", "-I ", "-D "):
            rules += 1
        elif line.startswith(":") or line.startswith("-X "):
            chains += 1
    return rules, chains


@dataclass(frozen=True, slots=True)
class Flow:
    """One conntrack entry's original direction (read over ctnetlink; `parse_flows` reads
    `conntrack -L`'s text, for a listing in hand)."""

    family: int
    protocol: str
    src: str
    dst: str
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None

    def packet(self) -> Packet:
        return Packet(
            src=self.src,
            dst=self.dst,
            protocol=self.protocol,
            sport=self.sport,
            dport=self.dport,
            icmp_type=self.icmp_type,
            icmp_code=self.icmp_code,
        )


_PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp"}


def flow_of(entry: Tracked) -> Flow | None:
    """A tracked entry's original direction as a `Flow` (tcp, udp, icmp, ipv6-icmp; None for
    the protocols the tracer does not decide)."""
    protocol = _PROTOCOL_NAMES.get(entry.protocol)
    if protocol is None:
        return None
    icmp = protocol in ("icmp", "ipv6-icmp")
    return Flow(
        entry.family,
        protocol,
        entry.src,
        entry.dst,
        None if icmp else entry.sport,
        None if icmp else entry.dport,
        entry.icmp_type if icmp else None,
        entry.icmp_code if icmp else None,
        entry.icmp_id if icmp else None,
    )


def parse_flows(listing: str, family: int) -> list[Flow]:
    """The original-direction tuples of `conntrack -L` output (tcp, udp, icmp, ipv6-icmp)."""
    flows = []
    for line in listing.splitlines():
        fields = line.split()
        if not fields or fields[0] not in ("tcp", "udp", "icmp", "ipv6-icmp"):
            continue
        values: dict[str, str] = {}
        for field in fields[1:]:
            key, _, value = field.partition("=")
            if value and key not in values:  # the first of each is the original direction
                values[key] = value
        if "src" not in values or "dst" not in values:
            continue

        numbers = {key: int(value) for key, value in values.items() if value.isdigit()}
        flows.append(
            Flow(
                family,
                fields[0],
                values["src"],
                values["dst"],
                numbers.get("sport"),
                numbers.get("dport"),
                numbers.get("type"),
                numbers.get("code"),
                numbers.get("id"),
            )
        )
    return flows


def read_carry_from(saved: str) -> dict[tuple[str, str], dict[str, list[Counter]]]:
    """`carry.read_carry` for a save already in hand (one filter table)."""
    carried: dict[tuple[str, str], dict[str, list[Counter]]] = {}
    for line in saved.splitlines():
        if not line.startswith("["):
            continue
        counts, rule = line.split(" ", 1)
        chain = rule.split(" ", 2)[1]
        packets, size = counts.strip("[]").split(":")
        if packets == "0" and size == "0":
            continue
        carried.setdefault(("filter", chain), {}).setdefault(rule.lower(), []).append(
            Counter(int(packets), int(size))
        )
    return carried


__all__ = [
    "Flow",
    "RouterFirewall",
    "RuleHits",
    "flow_of",
    "parse_flows",
    "read_carry",
    "read_carry_from",
]
