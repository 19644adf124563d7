"""Security group rule checks: one set for the API, the dashboard forms and the actions.

`clean_rule` returns a `CleanRule` with normalised values or raises `Invalid` naming every bad
field. The pure checks (no database) live in `check_rule_values` so they can be handed to the
firewall compiler's own validator when it exists, keeping API, forms and compiler in agreement.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sgweb.firewall import FirewallError, normalize_cidr, validate_rule
from sgweb.firewall.model import SecurityGroupRule as ModelRule
from sgweb.security.choices import Direction, Ethertype
from sgweb.security.models import SecurityGroup
from sgweb.tenancy.access import can_see_project
from sgweb.tenancy.errors import NotFound
from sgweb.tenancy.validators import Errors, clean_description

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

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
# Protocols whose port_range_* are destination ports.
PORT_PROTOCOLS = frozenset({"tcp", "udp", "sctp", "udplite", "dccp"})
# Protocols whose port_range_* are ICMP type and code.
ICMP_PROTOCOLS = frozenset({"icmp", "ipv6-icmp"})
IPV6_ONLY_PROTOCOLS = frozenset(
    {"ipv6-encap", "ipv6-frag", "ipv6-icmp", "ipv6-nonxt", "ipv6-opts", "ipv6-route"}
)
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
    value = protocol.lower()
    value = PROTOCOL_ALIASES.get(value, value)
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
        return int(value)  # type: ignore[arg-type]
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
        if not 0 <= int(lowered) <= 255:
            errors.add("protocol", f"Protocol number {lowered} is not between 0 and 255.")
            return None
        return str(int(lowered))
    if lowered not in PROTOCOL_NUMBERS:
        names = ", ".join(sorted(PROTOCOL_NUMBERS))
        errors.add(
            "protocol",
            f"Security group rule protocol {value} not supported. Only protocol values "
            f"[None, {names}] and integer representations [0 to 255] are supported.",
        )
        return None
    return lowered


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
    """The database-free checks; returns the cleaned values (meaningless if errors were added)."""
    if direction not in Direction.values:
        errors.add("direction", f"'{direction}' is not in ['ingress', 'egress'].")
    if ethertype is None or ethertype == "":
        ethertype = Ethertype.IPV4
    if isinstance(ethertype, str) and ethertype.lower() in ("ipv4", "ipv6"):
        ethertype = "IPv" + ethertype[-1]
    if ethertype not in Ethertype.values:
        errors.add("ethertype", f"'{ethertype}' is not in ['IPv4', 'IPv6'].")
    proto = _clean_protocol(errors, protocol)
    low = _clean_port(errors, "port_range_min", port_range_min)
    high = _clean_port(errors, "port_range_max", port_range_max)

    name = canonical_protocol(proto, str(ethertype)) if proto else None
    if name in IPV6_ONLY_PROTOCOLS and ethertype == Ethertype.IPV4:
        errors.add("protocol", f"Protocol {proto} is not supported for ethertype IPv4.")

    if low is not None or high is not None:
        if name is None:
            errors.add("protocol", "Must also specify protocol if port range is given.")
        elif name in PORT_PROTOCOLS:
            if low is None and high is not None:
                errors.add("port_range_min", "port_range_min is required with port_range_max.")
            if low is not None and high is None:
                high = low  # a single port
            for field, port in (("port_range_min", low), ("port_range_max", high)):
                if port is not None and not 1 <= port <= 65535:
                    errors.add(field, f"Invalid port {port}: ports are 1 to 65535.")
            if low is not None and high is not None and low > high:
                errors.add(
                    "port_range_max",
                    f"For TCP/UDP protocols, port_range_min ({low}) must be <= "
                    f"port_range_max ({high}).",
                )
        elif name in ICMP_PROTOCOLS:
            if low is None and high is not None:
                errors.add(
                    "port_range_min",
                    f"ICMP code (port-range-max) {high} is provided but "
                    "ICMP type (port-range-min) is missing.",
                )
            for field, label, value in (
                ("port_range_min", "type", low),
                ("port_range_max", "code", high),
            ):
                if value is not None and not 0 <= value <= 255:
                    errors.add(field, f"Invalid ICMP {label} {value}: it must be 0 to 255.")
        else:
            errors.add(
                "port_range_min",
                f"Protocol {proto} has no ports; port ranges are only valid for "
                "tcp, udp, sctp, udplite, dccp, and type/code for icmp and ipv6-icmp.",
            )

    prefix: str | None = None
    normalized: str | None = None
    if remote_ip_prefix not in (None, ""):
        if has_remote_group:
            errors.add(
                "remote_ip_prefix", "Only remote_ip_prefix or remote_group_id may be provided."
            )
        if not isinstance(remote_ip_prefix, str):
            errors.add("remote_ip_prefix", "remote_ip_prefix must be a string.")
        else:
            prefix = remote_ip_prefix.strip()
            try:
                normalized = normalize_cidr(prefix)
            except ValueError:
                errors.add("remote_ip_prefix", f"'{prefix}' is not a valid IP address or CIDR.")
            else:
                family = "IPv6" if ":" in normalized else "IPv4"
                if ethertype in Ethertype.values and family != ethertype:
                    errors.add(
                        "remote_ip_prefix",
                        f"Conflicting value ethertype {ethertype} for CIDR {prefix}.",
                    )
    return str(direction), str(ethertype), proto, low, high, prefix, normalized


def _delegate_to_compiler(clean: CleanRule, errors: Errors) -> None:
    """Ask the firewall compiler whether it can turn the rule into kernel rules, so that the
    API, the forms and the compiler never disagree about what is valid."""

    try:
        validate_rule(
            ModelRule(
                id="new-rule",
                direction=clean.direction,
                ethertype=clean.ethertype,
                protocol=neutron_protocol_for_kernel(clean.protocol),
                port_range_min=clean.port_range_min,
                port_range_max=clean.port_range_max,
                remote_ip_prefix=clean.normalized_cidr,
                remote_group_id=str(clean.remote_group.id) if clean.remote_group else None,
            )
        )
    except FirewallError as error:
        field = (error.field or "__all__").split("/")[0]
        errors.add(field, f"The firewall cannot apply this rule: {error.problem}.")


# Neutron names whose number differs from the /etc/protocols name the compiler uses.
_NEUTRON_NUMBERS = {"ipip": "4", "ipv6-encap": "41", "hopopt": "0"}


def neutron_protocol_for_kernel(protocol: str | None) -> str | None:
    """The protocol as the firewall compiler should read it: Neutron's meaning, not netbase's
    (Neutron's "ipip" is protocol 4; /etc/protocols calls 94 "ipip")."""
    if protocol is None:
        return None
    return _NEUTRON_NUMBERS.get(protocol.lower(), protocol)


def clean_rule(
    actor: AbstractBaseUser | None, group: SecurityGroup, data: dict[str, Any]
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
    clean = CleanRule(
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
    _delegate_to_compiler(clean, errors)
    errors.raise_if_any()
    return clean
