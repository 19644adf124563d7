"""Checks of firewall rule values: what the API accepts, the kernel accepts.

Addresses must be of the rule's ip_version, ports are for tcp and udp only, and a range
"a:b" needs a <= b, all within 1..65535 (iptables' --sport/--dport with a ':' range).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sgweb.firewall.fwaas.model import ACTIONS, PROTOCOLS
from sgweb.tenancy.validators import Errors

ANY_PROTOCOL = ("any", "", None)  # Neutron's "any": no protocol match


def clean_protocol(errors: Errors, value: object) -> str | None:
    if value in ANY_PROTOCOL:
        return None
    if isinstance(value, str) and value.lower() in PROTOCOLS:
        return value.lower()
    errors.add(
        "protocol",
        f"Protocol {value} is not supported. Only protocol values "
        f"{', '.join(PROTOCOLS)} and their integer representation or 'any' are supported.",
        neutron_type="FirewallRuleInvalidProtocol",
    )
    return None


def clean_ip_version(errors: Errors, value: object) -> int:
    if value in (4, 6, "4", "6"):
        return int(str(value))
    errors.add("ip_version", f"Invalid IP version {value!r}: 4 or 6.")
    return 4


def clean_action(errors: Errors, value: object) -> str:
    if isinstance(value, str) and value.lower() in ACTIONS:
        return value.lower()
    errors.add(
        "action",
        f"Action {value} is not supported. Only action values {', '.join(ACTIONS)} are supported.",
        neutron_type="FirewallRuleInvalidAction",
    )
    return "deny"


def clean_address(errors: Errors, field: str, value: object, ip_version: int) -> str | None:
    """An address or a CIDR (host bits allowed, as iptables takes them) of `ip_version`."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        errors.add(field, f"'{value}' is not a valid IP address or subnet.")
        return None
    text = value.strip()
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        errors.add(field, f"'{value}' is not a valid IP address or subnet.")
        return None
    if network.version != ip_version:
        errors.add(
            field,
            f"Invalid input - IP addresses do not agree with IP Version: {text} is not "
            f"IPv{ip_version}.",
            neutron_type="FirewallIpAddressConflict",
        )
        return None
    return text


def clean_port(errors: Errors, field: str, value: object) -> str | None:
    """ "80" or "80:90" (Neutron also takes an int); None: any port."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    parts = text.split(":")
    numbers: list[int] = []
    if len(parts) <= 2 and all(part.isdigit() for part in parts):
        numbers = [int(part) for part in parts]
    if not numbers or not all(1 <= number <= 65535 for number in numbers):
        errors.add(field, f"Invalid port '{value}': a port 1-65535 or a range 'a:b'.")
        return None
    if len(numbers) == 2 and numbers[0] > numbers[1]:
        errors.add(
            field,
            f"Invalid port range {text}: the first port must not exceed the last.",
            neutron_type="FirewallRuleInvalidPortValue",
        )
        return None
    if len(numbers) == 2 and numbers[0] == numbers[1]:
        return str(numbers[0])
    return text


def check_ports_need_tcp_or_udp(errors: Errors, values: dict[str, Any]) -> None:
    """Ports match tcp and udp only: with icmp or any protocol the kernel has no port to
    match, so such a rule would silently match more than it says."""
    if values.get("protocol") in ("tcp", "udp"):
        return
    for field in ("source_port", "destination_port"):
        if values.get(field) is None:
            continue
        if values.get("protocol") == "icmp":
            errors.add(
                field,
                "Source, destination port are not allowed when protocol is set to ICMP.",
                neutron_type="FirewallRuleInvalidICMPParameter",
            )
        else:
            errors.add(
                field,
                "Source/destination port requires a protocol (tcp or udp).",
                neutron_type="FirewallRuleWithPortWithoutProtocolInvalid",
            )
