"""What a FWaaS v2 rule and a router's state must be for the kernel to take them (issue 16).

The API validates with these same functions ("what the API accepts, the kernel accepts"); the
compiler calls them again so that a bad state never reaches iptables-restore. Errors are
`FirewallError`s naming the object and the field, with a stable code.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache

from sgweb.firewall.errors import FirewallError
from sgweb.firewall.fwaas.model import (
    ACTIONS,
    PROTOCOLS,
    FirewallPolicy,
    FirewallRule,
    RouterState,
)

RULE_KIND = "firewall rule"
GROUP_KIND = "firewall group"
ROUTER_KIND = "router"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def rule_error(rule: FirewallRule, field: str, problem: str, code: str) -> FirewallError:
    return FirewallError(RULE_KIND, rule.id, field, problem, code)


# Parsing dominates compile time (one policy is shared by many groups and both directions);
# rules are frozen, so a rule checked once is good for the whole run. Failures are not cached.
@lru_cache(maxsize=65536)
def parse_network(text: str) -> Network:
    """An address or CIDR as a network; host bits are masked, as iptables does."""
    return ipaddress.ip_network(text.strip(), strict=False)


@lru_cache(maxsize=65536)
def parse_port_range(text: str) -> tuple[int, int]:
    """ "80" -> (80, 80), "80:90" -> (80, 90); ValueError for anything else."""
    parts = text.strip().split(":")
    if len(parts) > 2 or not all(part.strip().isdigit() for part in parts):
        raise ValueError(f"{text!r} is not a port or a range low:high")
    low, high = int(parts[0]), int(parts[-1])
    if not (0 <= low <= 65535 and 0 <= high <= 65535):
        raise ValueError(f"{text!r} is outside 0-65535")
    if low > high:
        raise ValueError(f"{text!r} has its low port above its high port")
    return low, high


@lru_cache(maxsize=65536)
def validate_rule(rule: FirewallRule) -> None:
    """Raise FirewallError for the first field the kernel (or Neutron) would refuse."""
    if rule.ip_version not in (4, 6):
        raise rule_error(rule, "ip_version", "must be 4 or 6", "ip-version")
    if rule.protocol is not None and rule.protocol not in PROTOCOLS:
        raise rule_error(
            rule, "protocol", "must be tcp, udp, icmp or any (None)", "unknown-protocol"
        )
    if rule.action not in ACTIONS:
        raise rule_error(rule, "action", "must be allow, deny or reject", "action")
    for field in ("source_ip_address", "destination_ip_address"):
        value = getattr(rule, field)
        if value is None:
            continue
        try:
            network = parse_network(value)
        except ValueError:
            problem = f"{value!r} is not an address or CIDR"
            raise rule_error(rule, field, problem, "bad-cidr") from None
        if network.version != rule.ip_version:
            raise rule_error(
                rule,
                field,
                f"{value} is an IPv{network.version} address in an IPv{rule.ip_version} rule",
                "cidr-family",
            )
    for field in ("source_port", "destination_port"):
        value = getattr(rule, field)
        if value is None:
            continue
        if rule.protocol not in ("tcp", "udp"):
            protocol = rule.protocol or "any"
            raise rule_error(
                rule,
                field,
                f"ports need protocol tcp or udp, not {protocol}",
                "no-ports-for-protocol",
            )
        try:
            parse_port_range(value)
        except ValueError as error:
            raise rule_error(rule, field, str(error), "port-range") from None


def validate_policy_rules(policy: FirewallPolicy) -> None:
    for rule in policy.rules:
        validate_rule(rule)


def validate_router_state(
    state: RouterState, check_policy: Callable[[FirewallPolicy], None] = validate_policy_rules
) -> None:
    """The rules of every group (each policy through `check_policy`: the compiler checks a
    policy shared by many groups once), and what makes names collide in the kernel."""
    router = state.router
    devices: dict[str, str] = {}
    for interface in router.interfaces:
        other = devices.setdefault(interface.device, interface.port_id)
        if other != interface.port_id:
            raise FirewallError(
                ROUTER_KIND,
                router.id,
                "interfaces",
                f"ports {other} and {interface.port_id} share the device name {interface.device}",
                "device-collision",
            )
    on_router = {interface.port_id for interface in router.interfaces}
    owner: dict[str, str] = {}
    chain_keys: dict[str, str] = {}
    for group in state.firewall_groups:
        for policy in (group.ingress_policy, group.egress_policy):
            if policy is not None:
                check_policy(policy)
        key = group.id[:8]
        other = chain_keys.setdefault(key, group.id)
        if other != group.id:
            raise FirewallError(
                GROUP_KIND,
                group.id,
                "id",
                f"its chain names would equal those of group {other} (same first 8 characters)",
                "chain-collision",
            )
        for port_id in group.ports:
            if port_id not in on_router:
                continue
            holder = owner.setdefault(port_id, group.id)
            if holder != group.id:
                raise FirewallError(
                    GROUP_KIND,
                    group.id,
                    "ports",
                    f"port {port_id} already belongs to firewall group {holder}",
                    "port-in-use",
                )
