"""What each compiled rule is for, in security-group words (pure: the agent uses it too).

"allow tcp/22 from 198.51.100.0/24 (rule 1f0c2a9e of web)", "drop INVALID packets",
"anti-spoofing: 192.0.2.10 from FA:16:3E:00:00:10", "default drop". Built from the rule's
`Origin` (which port, direction, group rule or built-in purpose) and the host's desired state.
"""

from __future__ import annotations

from sgweb.firewall.ir import (
    ACCEPT,
    DROP,
    ORIGIN_ANTI_SPOOF,
    ORIGIN_DHCP,
    ORIGIN_FALLBACK,
    ORIGIN_ICMPV6,
    ORIGIN_JUMP,
    ORIGIN_SG_RULE,
    RETURN,
    Rule,
)
from sgweb.firewall.model import EGRESS, HostState
from sgweb.firewall.trace.words import ICMPV6_NAMES, ORIGIN_RULE_LABELS, describe_rule


def short_id(identifier: str | None) -> str:
    return (identifier or "?")[:8]


def group_name(state: HostState | None, group_id: str | None) -> str | None:
    if group_id is None:
        return None
    group = state.group(group_id) if state is not None else None
    return group.name if group is not None and group.name else short_id(group_id)


def _sg_rule_label(rule: Rule, state: HostState | None) -> str:
    origin = rule.origin
    group = state.group(origin.group_id) if state is not None and origin.group_id else None
    found = None
    if group is not None:
        found = next((r for r in group.rules if r.id == origin.rule_id), None)
    what = describe_rule(found, state) if found is not None else "a security group rule"
    where = f"rule {short_id(origin.rule_id)} of {group_name(state, origin.group_id)}"
    member = f", member {origin.member}" if origin.member else ""
    return f"allow {what} ({where}{member})"


def _anti_spoof_label(rule: Rule) -> str:
    if rule.target == RETURN:
        source = rule.match.source.split("/")[0] if rule.match.source else "any address"
        if rule.match.source and not rule.match.source.endswith(("/32", "/128")):
            source = rule.match.source
        mac = rule.match.mac_source or "any MAC"
        return f"anti-spoofing: {source} from {mac}"
    if rule.target == DROP:
        return "anti-spoofing: drop any other source address or MAC"
    return "anti-spoofing: check the source address and MAC"


def _icmpv6_label(rule: Rule) -> str:
    icmp_type = rule.match.icmp_type
    name = ICMPV6_NAMES.get(icmp_type or -1, f"type {icmp_type}" if icmp_type else "messages")
    verb = "allow" if rule.target in (RETURN, ACCEPT) else "drop"
    return f"{verb} ICMPv6 {name}"


def _dhcp_label(rule: Rule) -> str:
    if rule.origin.direction == EGRESS:
        return "allow DHCP requests from the VM"
    server = rule.match.source.split("/")[0] if rule.match.source else "the subnet's servers"
    return f"allow DHCP replies from {server}"


def rule_label(rule: Rule, state: HostState | None) -> str:
    """One line saying what `rule` does and why it is there."""
    kind = rule.origin.kind
    if kind == ORIGIN_SG_RULE:
        return _sg_rule_label(rule, state)
    if kind == ORIGIN_ANTI_SPOOF:
        return _anti_spoof_label(rule)
    if kind == ORIGIN_ICMPV6:
        return _icmpv6_label(rule)
    if kind == ORIGIN_DHCP:
        return _dhcp_label(rule)
    if kind == ORIGIN_JUMP:
        return f"to {rule.target}"
    if kind == ORIGIN_FALLBACK and rule.target == DROP:
        return "default drop: nothing allowed it"
    return ORIGIN_RULE_LABELS.get(kind, kind)
