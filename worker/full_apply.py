"""Full applies (agent start, drift repair): accept what exists, remove what is stale."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

from sgweb.firewall.ir import BUILTIN_CHAINS, CompiledHost
from sgweb.firewall.render import render_iptables
from sgweb.kernel.apply import (
    TABLES,
    ApplyReport,
    HostFirewall,
    IpsetPlan,
    PlainDelta,
    offending_line,
)
from sgweb.kernel.carry import Carried, carry_ipv6_counters, restore_argv, with_counters
from sgweb.kernel.readback import save_command
from worker import drift

log = logging.getLogger(__name__)

# ipsets the compiler makes are named "IPv4"/"IPv6" + group id (+ "-n" while being swapped).
_OUR_SET_PREFIXES = ("IPv4", "IPv6")


def with_existing_sets(delta: Any) -> PlainDelta:
    """A full apply over a kernel that may already hold our sets: create them if missing.

    The compiler's from-nothing plan creates each set; sets surviving from an earlier agent
    would make `create` fail, so `-exist` lets the plan (which swaps new members in) run.
    """
    plan = delta.ipsets
    prepare = "\n".join(
        f"{line} -exist" if line.startswith("create ") and "-exist" not in line else line
        for line in plan.prepare.splitlines()
    )
    if prepare and not prepare.endswith("\n"):
        prepare += "\n"
    return PlainDelta(
        ipsets=IpsetPlan(prepare, plan.commit, plan.cleanup, plan.abort),
        iptables=tuple(delta.iptables),
    )


def remove_stale(
    firewall: HostFirewall, compiled: CompiledHost, families: tuple[int, ...] = (4, 6)
) -> int:
    """Delete chains (of `families`) and sets of ours that the compiled state does not have."""
    removed = 0
    for family in families:
        wanted, _ = drift.expected_shape(compiled, family)
        have, _, _ = drift.kernel_shape(firewall.save(family))
        stale: dict[str, list[str]] = {}
        for key in sorted(set(have) - set(wanted)):
            table, chain = key.split("/", 1)
            stale.setdefault(table, []).append(chain)
        if not stale:
            continue
        # Flush all first, then delete: stale chains may reference each other.
        text = ""
        for table, chains in stale.items():
            text += f"*{table}\n" + "".join(f"-F {c}\n" for c in chains)
            text += "".join(f"-X {c}\n" for c in chains) + "COMMIT\n"
        outcome = firewall.apply(PlainDelta(iptables=((family, text),)))
        if outcome.ok:
            removed += sum(len(chains) for chains in stale.values())
        else:
            log.warning("could not remove stale chains %s: %s", stale, outcome.error)
    wanted_sets = {ipset.name for ipset in compiled.ipsets}
    stale_sets = [
        name
        for name in firewall.ipset_names()
        if name.startswith(_OUR_SET_PREFIXES) and name not in wanted_sets
    ]
    if stale_sets:
        text = "".join(f"destroy {name}\n" for name in stale_sets)
        outcome = firewall.apply(PlainDelta(ipsets=IpsetPlan(cleanup=text)))
        removed += len(stale_sets) if not outcome.warnings else 0
    return removed


# -- the fast path: tables that hold nothing but ours ---------------------------------------


def owns_tables_alone(firewall: HostFirewall, family: int) -> bool:
    """True when the raw and filter tables of `family` hold only our chains and our jumps.

    That is the case on a lab host and on a host whose firewall only sgweb manages. Then a full
    apply may replace those tables whole (`iptables-restore` without --noflush, atomic per
    table), which on the nf_tables backend is ~1.5x faster than re-declaring every chain under
    --noflush, and leaves no stale chain behind. Anything foreign (another program's chain or
    rule, a non-ACCEPT policy) means the careful --noflush path.
    """
    for table in TABLES:
        listing = firewall.runner.run(
            [save_command(family), "-t", table], netns=firewall.netns
        ).stdout
        for line in listing.splitlines():
            if line.startswith(":"):
                name, policy = [*line[1:].split(), "-"][:2]
                if name in BUILTIN_CHAINS:
                    if policy != "ACCEPT":
                        return False
                elif not firewall.owns_chain(name):
                    return False
            elif line.startswith("-A "):
                parts = line.split()
                chain = parts[1]
                if firewall.owns_chain(chain):
                    continue
                target = parts[parts.index("-j") + 1] if "-j" in parts[:-1] else ""
                if chain not in BUILTIN_CHAINS or not firewall.owns_chain(target):
                    return False
    return True


def apply_full(
    firewall: HostFirewall,
    compiled: CompiledHost,
    delta: PlainDelta,
    carried: dict[int, Carried] | None = None,
) -> ApplyReport:
    """Apply everything: whole tables where we are alone, --noflush elsewhere.

    Sets go first (filled and swapped in: rules may reference them at once), then each family.
    `carried` (per family, `sgweb.kernel.carry.read_carry`) puts back the counters of rules
    that survive; `delta` is expected to carry them already.
    """
    alone = {family: owns_tables_alone(firewall, family) for family in (4, 6)}
    if not any(alone.values()):
        return _with_ipv6_counters(firewall, delta, firewall.apply(delta, rollback=PlainDelta()))
    started = time.perf_counter()
    plan = delta.ipsets
    sets = firewall.apply(
        PlainDelta(ipsets=IpsetPlan(prepare=plan.prepare, commit=plan.commit, abort=plan.abort))
    )
    steps = list(sets.steps)
    if not sets.ok:
        return sets
    rule_lines: dict[int, int] = {}
    warnings: list[str] = []

    def report(**failure: object) -> ApplyReport:
        return ApplyReport(
            ok=not failure,
            duration_s=time.perf_counter() - started,
            steps=tuple(steps),
            rule_lines=rule_lines,
            chain_lines={},
            ipset_lines=sets.ipset_lines,
            warnings=() if failure else (*sets.warnings, *warnings),
            **failure,  # type: ignore[arg-type]
        )

    for family, text in delta.iptables:
        if not alone[family]:
            careful = firewall.apply(PlainDelta(iptables=((family, text),)), rollback=PlainDelta())
            steps += careful.steps
            if not careful.ok:
                return careful
            warnings += carry_ipv6_counters(firewall.netns, family, text)
            rule_lines.update(careful.rule_lines)
            continue
        whole = render_iptables(compiled, family)
        if carried and family in carried:
            whole = with_counters(whole, carried[family])
        step_started = time.perf_counter()
        result = firewall.runner.run(
            restore_argv(family, whole), input=whole, netns=firewall.netns, check=False, timeout=300
        )
        steps.append((f"iptables.{family}.tables", time.perf_counter() - step_started))
        rule_lines[family] = sum(1 for line in whole.splitlines() if line.startswith("-A "))
        if result.returncode != 0:
            number, line = offending_line(result.stderr, whole)
            return report(
                error=result.stderr.strip() or f"exit status {result.returncode}",
                failed_step=f"iptables.{family}",
                offending_line_number=number or None,
                offending_line=line or None,
            )
        warnings += carry_ipv6_counters(firewall.netns, family, whole, whole_tables=True)
    return report()


def _with_ipv6_counters(
    firewall: HostFirewall, delta: PlainDelta, report: ApplyReport
) -> ApplyReport:
    if not report.ok:
        return report
    warnings = [
        warning
        for family, text in delta.iptables
        for warning in carry_ipv6_counters(firewall.netns, family, text)
    ]
    return replace(report, warnings=report.warnings + tuple(warnings)) if warnings else report
