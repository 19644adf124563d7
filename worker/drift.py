"""Comparing the kernel with what the agent last applied (pure; the agent reads the kernel).

Two checks, cheap first:

* shape: every chain we compiled exists with the number of rules we compiled, no chain of ours
  exists that we did not compile, the built-in chains still jump into ours, and every set has
  exactly our members. `iptables -F`, a deleted chain, an added or deleted rule, an emptied set
  are all caught here, without depending on how iptables-save spells a rule;
* text: once a check has seen the kernel matching in shape after an apply, it remembers the
  kernel's own text (`HostFirewall.save`, counters zeroed); later checks compare against it, so a
  rule edited in place (same count, different match) is caught too.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sgweb.firewall.ir import CompiledHost


@dataclass
class DriftFindings:
    missing_chains: list[str] = field(default_factory=list)
    extra_chains: list[str] = field(default_factory=list)
    changed_chains: list[str] = field(default_factory=list)
    missing_jumps: list[str] = field(default_factory=list)
    changed_sets: list[str] = field(default_factory=list)
    # What else decides our traffic (worker.bypass), as sentences: rules ahead of our jumps,
    # our jumps out of place, policies, bridge sysctls.
    bypasses: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(self.as_dict().values())

    @property
    def shape(self) -> bool:
        """Our own chains, jumps or sets differ (a full re-apply puts them right)."""
        return any(value for key, value in self.as_dict().items() if key != "bypasses")

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "missing_chains": self.missing_chains,
            "extra_chains": self.extra_chains,
            "changed_chains": self.changed_chains,
            "missing_jumps": self.missing_jumps,
            "changed_sets": self.changed_sets,
            "bypasses": self.bypasses,
        }

    def words(self) -> list[str]:
        """Every finding as a sentence an admin can act on."""
        said = [
            *(f"{name}: a chain of ours is missing." for name in self.missing_chains),
            *(f"{name}: a chain of ours that the applied state does not have." for name in
              self.extra_chains),
            *(f"{name}: differs from what was applied." for name in self.changed_chains),
            *(f"{name}: the jump into our chains is missing, so packets do not reach the "
              "security groups." for name in self.missing_jumps),
            *(f"ipset {name}: members differ from the applied state." for name in
              self.changed_sets),
        ]  # fmt: skip
        return said + list(self.bypasses)


def expected_shape(compiled: CompiledHost, family: int) -> tuple[dict[str, int], set[str]]:
    """(owned "table/chain" -> rule count, {"table/BUILTIN->target"} jumps we need)."""
    counts: dict[str, int] = {}
    jumps: set[str] = set()
    for table in compiled.family(family).tables:
        for chain in table.chains:
            if chain.owned:
                counts[f"{table.name}/{chain.name}"] = len(chain.rules)
            else:
                for rule in chain.rules:
                    jumps.add(f"{table.name}/{chain.name}->{rule.target}")
    return counts, jumps


def kernel_shape(saved: str) -> tuple[dict[str, int], set[str], dict[str, list[str]]]:
    """Parse `HostFirewall.save` text: owned chain counts, built-in jumps, lines per chain."""
    counts: dict[str, int] = {}
    jumps: set[str] = set()
    lines: dict[str, list[str]] = defaultdict(list)
    owned: set[str] = set()
    table = ""
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":"):
            name = line[1:].split(" ", 1)[0]
            owned.add(name)
            counts[f"{table}/{name}"] = 0
        elif line.startswith("-A "):
            chain = line.split(" ", 2)[1]
            key = f"{table}/{chain}"
            if chain in owned:
                counts[key] = counts.get(key, 0) + 1
                lines[key].append(line)
            else:
                parts = line.split()
                for flag in ("-j", "-g"):
                    if flag in parts and parts.index(flag) + 1 < len(parts):
                        jumps.add(f"{key}->{parts[parts.index(flag) + 1]}")
    return counts, jumps, dict(lines)


def compare_iptables(compiled: CompiledHost, family: int, saved: str, into: DriftFindings) -> None:
    want_counts, want_jumps = expected_shape(compiled, family)
    have_counts, have_jumps, _ = kernel_shape(saved)
    tag = f"IPv{family} "
    for key, count in sorted(want_counts.items()):
        if key not in have_counts:
            into.missing_chains.append(tag + key)
        elif have_counts[key] != count:
            into.changed_chains.append(f"{tag}{key} ({have_counts[key]} rules, want {count})")
    into.extra_chains.extend(tag + key for key in sorted(set(have_counts) - set(want_counts)))
    into.missing_jumps.extend(tag + jump for jump in sorted(want_jumps - have_jumps))


def compare_text(family: int, verified: str, saved: str, into: DriftFindings) -> None:
    """Chains whose kernel text changed since it was last seen correct."""
    _, _, before = kernel_shape(verified)
    _, _, now = kernel_shape(saved)
    for key in sorted(set(before) | set(now)):
        if before.get(key) != now.get(key):
            into.changed_chains.append(f"IPv{family} {key} (rules edited)")


def parse_ipset_save(saved: str) -> dict[str, set[str]]:
    members: dict[str, set[str]] = {}
    for line in saved.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "create":
            members.setdefault(parts[1], set())
        elif len(parts) >= 3 and parts[0] == "add":
            members.setdefault(parts[1], set()).add(parts[2])
    return members


def _canonical(member: str) -> str:
    # ipset save prints host addresses without /32 (/128) but networks with their prefix.
    for suffix in ("/32", "/128"):
        if member.endswith(suffix):
            return member[: -len(suffix)]
    return member


def compare_ipsets(compiled: CompiledHost, saved: str, into: DriftFindings) -> None:
    have = parse_ipset_save(saved)
    for ipset in compiled.ipsets:
        want = {_canonical(m) for m in ipset.members}
        got = {_canonical(m) for m in have.get(ipset.name, set())}
        if ipset.name not in have:
            into.changed_sets.append(f"{ipset.name} (missing)")
        elif want != got:
            into.changed_sets.append(
                f"{ipset.name} ({len(want - got)} members missing, {len(got - want)} extra)"
            )
