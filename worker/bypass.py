"""What decides our traffic besides our own chains, in words (pure; the agent reads the kernel).

Our chains only matter if packets reach them. Three things decide that, and each is checked:

* the built-in chains (filter INPUT/FORWARD/OUTPUT, raw PREROUTING/OUTPUT, both families): our
  jumps must come first, in the compiled order. A rule someone placed ahead of them (the classic
  `iptables -I FORWARD 1 -j ACCEPT`) decides packets before any security group sees them. Our
  jumps are ours to put back first; the foreign rule is not ours to delete, so it is reported
  (and remembered while it exists) instead;
* the built-in chains' policies: not ours either; a change from what the agent found at start is
  reported;
* the bridge sysctls: with `net.bridge.bridge-nf-call-iptables` at 0, bridged traffic skips
  iptables entirely and no security group filters any port. Ours to set back to 1.

Every finding carries a sentence for people (the host page, the API, the live event) and what
the agent does about it (`REPAIR`: put right; `ALERT`: reported, left as it is).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from sgweb.firewall.ir import CompiledHost
from sgweb.kernel.ktrace import TRACE_TAG_PREFIX

REPAIR = "repair"
ALERT = "alert"

# The built-in chains whose rules and policies decide whether packets reach ours.
WATCHED = {"filter": ("INPUT", "FORWARD", "OUTPUT"), "raw": ("PREROUTING", "OUTPUT")}

_WATCHED_LINES = tuple({f"-A {chain} " for chains in WATCHED.values() for chain in chains})

FOREIGN_AHEAD = "foreign-rule-ahead"
JUMP_ORDER = "jump-order"
POLICY = "policy"
SYSCTL_OFF = "sysctl-off"
SYSCTL_MISSING = "sysctl-missing"
FOREIGN_NFT = "foreign-nft-chain"

# The tables iptables-nft, ip6tables-nft, arptables-nft and ebtables-nft make: anything else in
# nf_tables was made by someone else (nft, firewalld, another agent).
XTABLES_TABLES = {
    (family, name)
    for family in ("ip", "ip6")
    for name in ("filter", "raw", "mangle", "nat", "security")
} | {("arp", "filter"), ("bridge", "filter"), ("bridge", "nat"), ("bridge", "broute")}


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    action: str  # REPAIR | ALERT
    family: int | None
    table: str
    chain: str
    words: str
    rule: str = ""  # the foreign rule's spec, as iptables-save prints it

    @property
    def key(self) -> tuple[int | None, str, str, str]:
        return (self.family, self.table, self.chain, self.rule)

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "action": self.action,
            "family": self.family,
            "table": self.table,
            "chain": self.chain,
            "rule": self.rule,
            "words": self.words,
        }


@dataclass(frozen=True, slots=True)
class BuiltinChain:
    policy: str
    rules: tuple[str, ...]  # specs in kernel order, without "-A CHAIN "


def parse_builtins(saved: str) -> dict[tuple[str, str], BuiltinChain]:
    """(table, chain) -> policy and rules of each watched built-in chain in `iptables-save`."""
    policies: dict[tuple[str, str], str] = {}
    rules: dict[tuple[str, str], list[str]] = {}
    table = ""
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":"):
            name, _, rest = line[1:].partition(" ")
            if name in WATCHED.get(table, ()):
                policies[(table, name)] = rest.split(" ", 1)[0]
                rules.setdefault((table, name), [])
        elif line.startswith(_WATCHED_LINES):
            _, chain, *spec = line.split(" ", 2)
            if chain in WATCHED.get(table, ()):
                rules.setdefault((table, chain), []).append(spec[0] if spec else "")
    return {
        key: BuiltinChain(policies.get(key, "-"), tuple(rules.get(key, ()))) for key in policies
    }


def is_trace_marker(spec: str) -> bool:
    """Whether a rule is a ping-trace's transient `-j TRACE` (sgweb.kernel.ktrace)."""
    return target_of(spec) == "TRACE" and TRACE_TAG_PREFIX in spec


def target_of(spec: str) -> str | None:
    try:
        parts = shlex.split(spec)
    except ValueError:
        parts = spec.split()
    for flag in ("-j", "-g", "--jump", "--goto"):
        if flag in parts and parts.index(flag) + 1 < len(parts):
            return parts[parts.index(flag) + 1]
    return None


def our_jumps(compiled: CompiledHost, family: int) -> dict[tuple[str, str], tuple[str, ...]]:
    """(table, built-in chain) -> the chains of ours it must jump to, in order."""
    found: dict[tuple[str, str], tuple[str, ...]] = {}
    for table in compiled.family(family).tables:
        for chain in table.chains:
            if not chain.owned and chain.rules:
                found[(table.name, chain.name)] = tuple(rule.target for rule in chain.rules)
    return found


def effect(table: str, spec: str) -> str:
    """What a rule ahead of our jumps does to the packets it matches, in words."""
    target = target_of(spec)
    if target is None:
        return "it only counts the packets it matches (harmless, but placed ahead of our jumps)"
    if table == "raw":
        if target in ("NOTRACK",) or (target == "CT" and "--notrack" in spec):
            return ("it leaves matching packets untracked, so stateful security-group rules and "
                    "our conntrack zones do not apply to them: a bypass")  # fmt: skip
        if target in ("ACCEPT", "RETURN", "DROP"):
            return (f"it ends the raw chain ({target}) for matching packets before our "
                    "conntrack zones are set")  # fmt: skip
    if target == "ACCEPT":
        return "it accepts matching packets before any security group sees them: a bypass"
    if target == "RETURN":
        return ("it ends the chain for matching packets, so they skip every security group and "
                "meet the chain's policy: a bypass")  # fmt: skip
    if target in ("DROP", "REJECT"):
        return f"it {target.lower()}s matching packets before the security groups decide"
    if target.isupper():
        return f"it applies {target} to matching packets before our chains"
    return (f"it sends matching packets to chain {target} first, which may accept them before "
            "any security group sees them: a possible bypass")  # fmt: skip


def chain_findings(
    family: int, table: str, chain: str, wanted: tuple[str, ...], kernel: BuiltinChain
) -> list[Finding]:
    """Foreign rules ahead of our jumps, and our jumps out of their compiled order."""
    where = f"IPv{family} {table} {chain}"
    ours = set(wanted)
    # A running trace's own TRACE rule sits at the top of raw PREROUTING for the trace's
    # lifetime: ours, not a bypass, and "repairing" it away would blind the trace.
    rules = [spec for spec in kernel.rules if not is_trace_marker(spec)]
    positions = [i for i, spec in enumerate(rules) if target_of(spec) in ours]
    findings = []
    if positions:
        last = max(positions)
        for index, spec in enumerate(rules[:last]):
            if target_of(spec) not in ours:
                findings.append(Finding(
                    FOREIGN_AHEAD, ALERT, family, table, chain,
                    f"{where}: rule {index + 1} `{spec}` is ahead of our jumps; "
                    f"{effect(table, spec)}.",
                    rule=spec,
                ))  # fmt: skip
    present = tuple(target_of(rules[i]) or "" for i in positions)
    # Our jumps first, once each, in order (a missing one is the shape check's finding).
    expected = tuple(target for target in wanted if target in present)
    if present[: len(expected)] != expected or len(present) != len(expected) or findings:
        findings.append(Finding(
            JUMP_ORDER, REPAIR, family, table, chain,
            f"{where}: our jumps are not first in order ({', '.join(present) or 'none'}); "
            "put back first.",
        ))  # fmt: skip
    return findings


def builtin_findings(
    compiled: CompiledHost,
    family: int,
    saved: str,
    baseline: dict[tuple[int, str, str], str],
    parsed: dict[tuple[str, str], BuiltinChain] | None = None,
) -> list[Finding]:
    """Everything in the watched built-in chains of one family that is not as it must be.

    `baseline` holds the policies the agent first found ((family, table, chain) -> policy); a
    chain not in it yet is added (the agent remembers them for its lifetime).
    """
    findings: list[Finding] = []
    kernel = parsed if parsed is not None else parse_builtins(saved)
    for (table, chain), wanted in sorted(our_jumps(compiled, family).items()):
        found = kernel.get((table, chain))
        if found is not None:
            findings.extend(chain_findings(family, table, chain, wanted, found))
    for (table, chain), found in sorted(kernel.items()):
        before = baseline.setdefault((family, table, chain), found.policy)
        if found.policy != before:
            findings.append(Finding(
                POLICY, ALERT, family, table, chain,
                f"IPv{family} {table} {chain}: policy changed from {before} to {found.policy}; "
                f"packets no rule decides are now {_verdict(found.policy)}.",
            ))  # fmt: skip
    return findings


def _verdict(policy: str) -> str:
    return {"ACCEPT": "accepted", "DROP": "dropped"}.get(policy, policy)


def sysctl_findings(values: dict[str, int | None]) -> list[Finding]:
    """Bridge sysctls off (ours to set back) or missing (br_netfilter not loaded)."""
    findings = []
    for name, value in sorted(values.items()):
        family = 6 if name.endswith("ip6tables") else 4
        if value is None:
            findings.append(Finding(
                SYSCTL_MISSING, ALERT, family, "sysctl", name,
                f"{name} does not exist (br_netfilter is not loaded): bridged IPv{family} "
                "traffic is not filtered by any security group.",
            ))  # fmt: skip
        elif value != 1:
            findings.append(Finding(
                SYSCTL_OFF, REPAIR, family, "sysctl", name,
                f"{name} is {value}: bridged IPv{family} traffic skips iptables, so no "
                "security group filters the ports on this host's bridges: a bypass; set back "
                "to 1.",
            ))  # fmt: skip
    return findings


def foreign_tables(tables: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (family, name) tables that are not iptables-nft's."""
    return sorted(table for table in tables if table not in XTABLES_TABLES)


def nft_findings(family: str, table: str, document: dict[str, Any]) -> list[Finding]:
    """One alert per base chain of a foreign nf_tables table (`nft -j list table`): it sees
    packets at a hook beside our chains. An accept there does not skip ours (every base chain
    of a hook runs), but a drop drops first and a notrack changes what conntrack sees."""
    items = document.get("nftables") or []
    untracks = {
        item["rule"].get("chain")
        for item in items
        if "rule" in item and "notrack" in json.dumps(item["rule"].get("expr", []))
    }
    findings = []
    for item in items:
        chain = item.get("chain") or {}
        if "hook" not in chain:
            continue
        name = chain.get("name", "")
        hook = f"{chain['hook']}, priority {chain.get('prio')}, policy {chain.get('policy')}"
        what = [
            f"nftables table {family} {table} (not iptables'): base chain {name} at hook {hook}"
        ]
        if chain.get("policy") == "drop":
            what.append("it drops what its rules do not accept, whatever the security groups say")
        if name in untracks:
            what.append("it untracks packets, so they skip our conntrack zones")
        if len(what) == 1:
            what.append("its drops act beside the security groups (an accept there skips nothing)")
        findings.append(
            Finding(FOREIGN_NFT, ALERT, None, f"{family} {table}", name, "; ".join(what) + ".")
        )
    return findings


Parsed = dict[int, dict[tuple[str, str], BuiltinChain]]  # family -> parse_builtins()


def still_present(
    remembered: dict[tuple[int | None, str, str, str], Finding], kernel: Parsed
) -> list[Finding]:
    """Foreign rules once found ahead of our jumps that still exist (now behind them)."""
    alive = []
    for (family, table, chain, spec), finding in remembered.items():
        chains = kernel.get(family or 0, {})
        found = chains.get((table, chain))
        if found is not None and spec in found.rules:
            alive.append(finding)
    return alive
