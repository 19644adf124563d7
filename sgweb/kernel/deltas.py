"""The shape of a firewall change as HostFirewall applies it, and two whole-state deltas.

`sgweb.firewall.incremental.diff` makes the usual deltas; these types let tests, benchmarks and
the agent hand-make one (a full apply into an empty kernel, or taking everything out again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sgweb.firewall.ir import CompiledHost
from sgweb.firewall.render import render_ipsets, render_iptables, render_rule


class IpsetPlanLike(Protocol):
    # Read-only members (properties), so that the frozen dataclasses below and in
    # sgweb.firewall.incremental satisfy them.
    @property
    def prepare(self) -> str: ...
    @property
    def commit(self) -> str: ...
    @property
    def cleanup(self) -> str: ...
    @property
    def abort(self) -> str: ...


class DeltaLike(Protocol):
    """What `sgweb.firewall.incremental.diff` returns; only these fields are used here."""

    @property
    def ipsets(self) -> IpsetPlanLike: ...
    @property
    def iptables(self) -> tuple[tuple[int, str], ...]: ...


@dataclass(frozen=True, slots=True)
class IpsetPlan:
    prepare: str = ""
    commit: str = ""
    cleanup: str = ""
    abort: str = ""


@dataclass(frozen=True, slots=True)
class PlainDelta:
    """A hand-made delta (tests, full applies): the same shape as the incremental one."""

    ipsets: IpsetPlan = field(default_factory=IpsetPlan)
    iptables: tuple[tuple[int, str], ...] = ()


def full_delta(compiled: CompiledHost) -> PlainDelta:
    """Everything of `compiled`, jumps from the built-in chains included: for a fresh kernel."""
    return PlainDelta(
        ipsets=IpsetPlan(prepare=render_ipsets(compiled)),
        iptables=((4, render_iptables(compiled, 4)), (6, render_iptables(compiled, 6))),
    )


def removal_delta(compiled: CompiledHost) -> PlainDelta:
    """Everything of `compiled` taken out again: our jumps deleted from the built-in chains, our
    chains flushed then deleted, our sets destroyed. The rollback of a full apply into a kernel
    that had none of it, and what `lab down` or a decommissioned host needs.
    """
    texts = []
    for family in (4, 6):
        sections = []
        for table in compiled.family(family).tables:
            jumps = [
                "-D" + render_rule(rule)[2:]
                for chain in table.chains
                if not chain.owned
                for rule in chain.rules
            ]
            owned = [chain.name for chain in table.chains if chain.owned]
            if not jumps and not owned:
                continue
            lines = [f"*{table.name}", *jumps]
            lines += [f":{name} - [0:0]" for name in owned]  # flushing drops their references
            lines += [f"-X {name}" for name in owned]
            lines.append("COMMIT")
            sections.append("\n".join(lines) + "\n")
        if sections:
            texts.append((family, "".join(sections)))
    cleanup = "".join(f"destroy {ipset.name}\n" for ipset in compiled.ipsets)
    return PlainDelta(ipsets=IpsetPlan(cleanup=cleanup), iptables=tuple(texts))
