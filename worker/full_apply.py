"""Full applies (agent start, drift repair): accept what exists, remove what is stale."""

from __future__ import annotations

import logging
from typing import Any

from sgweb.firewall.ir import CompiledHost
from sgweb.kernel.apply import HostFirewall, IpsetPlan, PlainDelta
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


def remove_stale(firewall: HostFirewall, compiled: CompiledHost) -> int:
    """Delete chains and sets of ours that the compiled state does not have."""
    removed = 0
    for family in (4, 6):
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
