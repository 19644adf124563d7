"""Security group rule checks: one set for the API, the dashboard forms and the actions.

`clean_rule` returns a `CleanRule` with normalised values or raises `Invalid` naming every bad
field. What a rule may say is written once, in the firewall compiler's `rule_problems`; here
Neutron's spelling is read and the compiler's codes are put in Neutron's words, so the API,
the forms and the compiler cannot disagree.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, SupportsInt, cast

from sgweb.firewall import FirewallError, normalize_cidr
from sgweb.firewall.model import SecurityGroupRule as ModelRule
from sgweb.firewall.protocols import normalize_protocol, takes_ports
from sgweb.firewall.validate import rule_problems
from sgweb.security.choices import Ethertype
from sgweb.security.models import SecurityGroup
from sgweb.tenancy.access import can_see_project
from sgweb.tenancy.errors import NotFound
from sgweb.tenancy.validators import Errors, clean_description

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    from sgweb.security.models import SecurityGroup

# Neutron's protocol names and their IANA numbers.
PROTOCOL_NUMBERS: dict[str, int] = {
    "hopopt": 0,
    "icmp": 1,
    "igmp": 2,
    "ipip": 4,
    "tcp": 6,
    "egp": 8,
    "udp": 17,
    "ipv6-encap": 41,
    "ipv6-route": 43,
    "ipv6-frag": 44,
    "rsvp": 46,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "ipv6-icmp": 58,
    "ipv6-nonxt": 59,
    "ipv6-opts": 60,
    "ospf": 89,
    "pgm": 113,
    "vrrp": 112,
    "sctp": 132,
    "udplite": 136,
    "dccp": 33,
}
PROTOCOL_ALIASES = {"icmpv6": "ipv6-icmp", "any": None}
_NAME_BY_NUMBER = {number: name for name, number in PROTOCOL_NUMBERS.items()}
ANY_PREFIXES = {"0.0.0.0/0", "::/0"}


@dataclass(frozen=True)
class CleanRule:
    direction: str
    ethertype: str
    protocol: str | None  # as given (lower-cased name or number string), None for any
    port_range_min: int | None
    port_range_max: int | None
    remote_ip_prefix: str | None
    normalized_cidr: str | None
    remote_group: SecurityGroup | None
    description: str

    @property
    def canonical_protocol(self) -> str | None:
        return canonical_protocol(self.protocol, self.ethertype)

    def duplicate_key(self) -> tuple[Any, ...]:
        return rule_duplicate_key(
            self.direction,
            self.ethertype,
            self.protocol,
            self.port_range_min,
            self.port_range_max,
            self.normalized_cidr,
            self.remote_group.id if self.remote_group else None,
        )


def canonical_protocol(protocol: str | None, ethertype: str) -> str | None:
    """A protocol as one name (or number string when unnamed): "6" -> "tcp", "icmpv6" -> ..."""
    if protocol is None:
        return None
    lowered = protocol.lower()
    value = PROTOCOL_ALIASES.get(lowered, lowered)
    if value is None:
        return None
    if value.isdigit():
        value = _NAME_BY_NUMBER.get(int(value), value)
    if value == "icmp" and ethertype == Ethertype.IPV6:
        # Neutron treats "icmp" on an IPv6 rule as ICMPv6.
        return "ipv6-icmp"
    return value


def rule_duplicate_key(
    direction: str,
    ethertype: str,
    protocol: str | None,
    port_range_min: int | None,
    port_range_max: int | None,
    normalized_cidr: str | None,
    remote_group_id: uuid.UUID | str | None,
) -> tuple[Any, ...]:
    # "From anywhere" written as 0.0.0.0/0 or left empty is the same rule.
    cidr = None if normalized_cidr in ANY_PREFIXES else normalized_cidr
    return (
        direction,
        ethertype,
        canonical_protocol(protocol, ethertype),
        port_range_min,
        port_range_max,
        cidr,
        str(remote_group_id) if remote_group_id else None,
    )


def _clean_port(errors: Errors, field: str, value: object) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        errors.add(field, f"{field} must be an integer.")
        return None
    try:
        return int(cast(SupportsInt | str, value))  # else TypeError, caught
    except (TypeError, ValueError):
        errors.add(field, f"'{value}' is not an integer.")
        return None


def _clean_protocol(errors: Errors, value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        errors.add("protocol", "Protocol must be a name or a number.")
        return None
    lowered = value.strip().lower()
    if lowered in PROTOCOL_ALIASES:
        return None if PROTOCOL_ALIASES[lowered] is None else lowered
    if lowered.isdigit():
        return str(int(lowered))  # its range is the compiler's check
    if lowered not in PROTOCOL_NUMBERS:
        names = ", ".join(sorted(PROTOCOL_NUMBERS))
        errors.add(
            "protocol",
            f"Security group rule protocol {value} not supported. Only protocol values "
            f"[None, {names}] and integer representations [0 to 255] are supported.",
            neutron_type="SecurityGroupRuleInvalidProtocol",
        )
        return None
    return lowered


# The compiler's rule contract (`sgweb.firewall.validate.rule_problems`) in Neutron's words:
# code -> (field the API names, message, Neutron's exception name or None for plain
# InvalidInput). The checks themselves live in the compiler, once; the words and names are
# neutron/extensions/securitygroup.py's.
NEUTRON_WORDS: dict[str, tuple[str | None, str, str | None]] = {
    "direction": ("direction", "'{value}' is not in ['ingress', 'egress'].", None),
    "ethertype": (
        "ethertype",
        "Security group rule for ethertype '{value}' not supported. Allowed values are "
        "['IPv4', 'IPv6'].",
        "SecurityGroupRuleInvalidEtherType",
    ),
    "unknown-protocol": (
        "protocol",
        "Security group rule protocol {protocol} not supported.",
        "SecurityGroupRuleInvalidProtocol",
    ),
    "protocol-number-range": (
        "protocol",
        "Protocol number {protocol} is not between 0 and 255.",
        "SecurityGroupRuleInvalidProtocol",
    ),
    "protocol-family": (
        "protocol",
        "Invalid ethertype {ethertype} for protocol {protocol}.",
        "SecurityGroupEthertypeConflictWithProtocol",
    ),
    "port-max-without-min": (
        "port_range_min",
        "For TCP/UDP protocols, port_range_min must be <= port_range_max",
        "SecurityGroupInvalidPortRange",
    ),
    "port-out-of-range": (
        None,
        "Invalid value for port {port}: ports are 1 to 65535.",
        "SecurityGroupInvalidPortValue",
    ),
    "port-range-reversed": (
        "port_range_max",
        "For TCP/UDP protocols, port_range_min must be <= port_range_max",
        "SecurityGroupInvalidPortRange",
    ),
    "icmp-code-without-type": (
        "port_range_min",
        "ICMP code (port-range-max) {icmp_code} is provided but ICMP type (port-range-min) "
        "is missing.",
        "SecurityGroupMissingIcmpType",
    ),
    "icmp-out-of-range": (
        None,
        "Invalid value for ICMP {kind} ({attr}) {value}. It must be 0 to 255.",
        "SecurityGroupInvalidIcmpValue",
    ),
    "no-ports-for-protocol": (
        "port_range_min",
        "Ports cannot be specified for protocol {protocol}. Ports are only supported for "
        "DCCP, SCTP, TCP, UDP, UDPLITE.",
        "SecurityGroupInvalidProtocolForPort",
    ),
    "prefix-and-group": (
        "remote_ip_prefix",
        "Only remote_ip_prefix or remote_group_id may be provided.",
        "SecurityGroupMultipleRemoteEntites",  # sic: Neutron's spelling
    ),
    "bad-cidr": ("remote_ip_prefix", "Invalid CIDR {value} given as IP prefix.", "InvalidCIDR"),
    "cidr-family": (
        "remote_ip_prefix",
        "Conflicting value ethertype {ethertype} for CIDR {value}",
        "SecurityGroupRuleParameterConflict",
    ),
}
# Neutron says this one in its own way: a port range with no protocol at all.
NO_PROTOCOL_FOR_PORTS = (
    "protocol",
    "Must also specify protocol if port range is given.",
    "SecurityGroupProtocolRequiredWithPorts",
)
ETHERTYPE_CONFLICT = "SecurityGroupEthertypeConflictWithProtocol"
# Neutron refuses these in IPv4 rules, by name and by number
# (securitygroups_db._validate_ethertype_and_protocol).
IPV6_ONLY_PROTOCOLS = frozenset(
    {"ipv6-encap", "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts", "ipv6-route"}
    | {"41", "44", "58", "59", "60", "43"}
)
# The reverse: IGMP exists only in IPv4 (IPv6 does its group management in ICMPv6), so an
# IPv6 rule for it could never match; refused in the same words. ("icmp" in an IPv6 rule is
# Neutron's legacy spelling of ICMPv6 and is converted, not refused.)
IPV4_ONLY_PROTOCOLS = frozenset({"igmp", "2"})
# Protocols with ports, where Neutron wants both ends of the range (_validate_port_range).
NEUTRON_PORT_PROTOCOLS = frozenset(
    {"tcp", "udp", "sctp", "dccp", "udplite", "6", "17", "132", "33", "136"}
)


def neutron_message(error: FirewallError) -> tuple[str, str, str | None]:
    """(field, message, Neutron type) of a compiler problem, in Neutron's words where we know
    them."""
    if error.code == "no-ports-for-protocol" and error.values.get("protocol") is None:
        return NO_PROTOCOL_FOR_PORTS
    field, template, neutron_type = NEUTRON_WORDS.get(error.code, (None, "", None))
    field = field or (error.field or "__all__").split("/")[0]
    if not template:
        return field, f"The firewall cannot apply this rule: {error.problem}.", None
    values = dict(error.values)
    if error.code == "icmp-out-of-range":
        values["attr"] = "port_range_min" if values.get("kind") == "type" else "port_range_max"
    return field, template.format(**values), neutron_type


def _neutron_refusal(
    errors: Errors, ethertype: str, protocol: str | None, low: int | None, high: int | None
) -> bool:
    """The refusals Neutron makes before any firewall question; True when one was made."""
    family_only = IPV6_ONLY_PROTOCOLS if ethertype == Ethertype.IPV4 else IPV4_ONLY_PROTOCOLS
    if protocol in family_only:
        errors.add(
            "protocol",
            f"Invalid ethertype {ethertype} for protocol {protocol}.",
            neutron_type=ETHERTYPE_CONFLICT,
        )
        return True
    if protocol in NEUTRON_PORT_PROTOCOLS and (low is None) != (high is None):
        # Neutron reads a lone minimum as a broken range, not as one port.
        errors.add(
            "port_range_max" if high is None else "port_range_min",
            "For TCP/UDP protocols, port_range_min must be <= port_range_max",
            neutron_type="SecurityGroupInvalidPortRange",
        )
        return True
    return False


def _canonical_ipv6_icmp(protocol: str | None, ethertype: str) -> str | None:
    """Neutron stores ICMPv6 rules given in legacy spelling ("icmp", "icmpv6", "1") as
    "ipv6-icmp" / "58" (_make_canonical_ipv6_icmp_protocol)."""
    if ethertype != Ethertype.IPV6:
        return protocol
    if protocol in ("icmp", "icmpv6"):
        return "ipv6-icmp"
    return "58" if protocol == "1" else protocol


def _neutron_ethertype(value: object) -> object:
    if value is None or value == "":
        return Ethertype.IPV4
    if isinstance(value, str) and value.lower() in ("ipv4", "ipv6"):
        return "IPv" + value[-1]
    return value


def check_rule_values(
    errors: Errors,
    *,
    direction: object,
    ethertype: object,
    protocol: object,
    port_range_min: object,
    port_range_max: object,
    remote_ip_prefix: object,
    has_remote_group: bool,
) -> tuple[str, str, str | None, int | None, int | None, str | None, str | None]:
    """The database-free checks; returns the cleaned values (meaningless if errors were added).

    Spelling is Neutron's (its protocol names, "ipv4" for IPv4, numbers as strings); what a
    rule may say is the compiler's `rule_problems`, reported in Neutron's words."""
    ethertype = _neutron_ethertype(ethertype)
    proto = _clean_protocol(errors, protocol)
    low = _clean_port(errors, "port_range_min", port_range_min)
    high = _clean_port(errors, "port_range_max", port_range_max)
    prefix = remote_ip_prefix.strip() if isinstance(remote_ip_prefix, str) else None
    if remote_ip_prefix not in (None, "") and not isinstance(remote_ip_prefix, str):
        errors.add("remote_ip_prefix", "remote_ip_prefix must be a string.")
    if errors:
        return str(direction), str(ethertype), proto, low, high, prefix or None, None
    proto = _canonical_ipv6_icmp(proto, str(ethertype))
    if _neutron_refusal(errors, str(ethertype), proto, low, high):
        return str(direction), str(ethertype), proto, low, high, prefix or None, None
    candidate = ModelRule(
        id="new-rule",
        direction=direction,  # type: ignore[arg-type]
        ethertype=ethertype,  # type: ignore[arg-type]
        protocol=neutron_protocol_for_kernel(proto),
        port_range_min=low,
        port_range_max=high,
        remote_ip_prefix=prefix or None,
        remote_group_id="remote-group" if has_remote_group else None,
    )
    problems = rule_problems(candidate)
    for problem in problems:
        field, message, neutron_type = neutron_message(problem)
        errors.add(field, message, neutron_type=neutron_type)
    if problems:
        return str(direction), str(ethertype), proto, low, high, prefix or None, None
    if (
        low is not None
        and high is None
        and takes_ports(normalize_protocol(candidate.protocol, str(ethertype)))
    ):
        high = low  # a single port
    normalized = normalize_cidr(prefix) if prefix else None
    return str(direction), str(ethertype), proto, low, high, prefix or None, normalized


# Neutron names whose number differs from the /etc/protocols name the compiler uses.
_NEUTRON_NUMBERS = {"ipip": "4", "ipv6-encap": "41", "hopopt": "0"}


def neutron_protocol_for_kernel(protocol: str | None) -> str | None:
    """The protocol as the firewall compiler should read it: Neutron's meaning, not netbase's
    (Neutron's "ipip" is protocol 4; /etc/protocols calls 94 "ipip")."""
    if protocol is None:
        return None
    return _NEUTRON_NUMBERS.get(protocol.lower(), protocol)


def clean_rule(
    actor: User | AnonymousUser | None, group: SecurityGroup, data: dict[str, Any]
) -> CleanRule:
    """Validate a new rule for `group` as `actor` would submit it."""

    errors = Errors()
    remote_group_id = data.get("remote_group_id") or None
    remote_group: SecurityGroup | None = None
    if remote_group_id is not None:
        try:
            remote_uuid = uuid.UUID(str(remote_group_id))
        except ValueError:
            remote_uuid = None
        if remote_uuid is not None:
            remote_group = (
                SecurityGroup.objects.filter(id=remote_uuid).only("id", "project_id").first()
            )
        if remote_group is None or not can_see_project(actor, remote_group.project_id):
            raise NotFound(
                f"Security group {remote_group_id} does not exist",
                neutron_type="SecurityGroupNotFound",
                errors={"remote_group_id": [f"Security group {remote_group_id} does not exist."]},
            )
    direction, ethertype, proto, low, high, prefix, normalized = check_rule_values(
        errors,
        direction=data.get("direction"),
        ethertype=data.get("ethertype"),
        protocol=data.get("protocol"),
        port_range_min=data.get("port_range_min"),
        port_range_max=data.get("port_range_max"),
        remote_ip_prefix=data.get("remote_ip_prefix"),
        has_remote_group=remote_group is not None,
    )
    description = clean_description(errors, data.get("description"))
    errors.raise_if_any()
    return CleanRule(
        direction=direction,
        ethertype=ethertype,
        protocol=proto,
        port_range_min=low,
        port_range_max=high,
        remote_ip_prefix=prefix,
        normalized_cidr=normalized,
        remote_group=remote_group,
        description=description,
    )
