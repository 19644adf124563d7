"""Refuse, before the kernel does, what it would refuse; return normalised objects.

One set of validators serves the API, the forms, the scenario loader and the compiler. Results
are cached per (frozen, hashable) object, so validating a big host repeatedly stays cheap.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket
from functools import lru_cache
from itertools import repeat

from sgweb.firewall import names
from sgweb.firewall.errors import FirewallError, group_error, port_error, rule_error
from sgweb.firewall.memberedit import MemberMemo
from sgweb.firewall.model import (
    COMPATS,
    DIRECTIONS,
    ETHERTYPES,
    IPV4,
    IPV6,
    LOG_EVENTS,
    AddressPair,
    HostState,
    LogSettings,
    Port,
    SecurityGroup,
    SecurityGroupRule,
)
from sgweb.firewall.protocols import (
    UnknownProtocol,
    normalize_protocol,
    takes_icmp_type,
    takes_ports,
)

_MAC = re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")
_VERSION_BY_ETHERTYPE = {IPV4: 4, IPV6: 6}
CACHE_SIZE = 1 << 16
MIN_ZONE = 1
MAX_ZONE = 65535
# xt_limit: at most 10000 packets/s (XT_LIMIT_SCALE) and a burst of 10000.
MAX_LOG_RATE = 10_000
MAX_LOG_BURST = 10_000
MAX_NFLOG_GROUP = 65535


def normalize_cidr(value: str, ethertype: str | None = None) -> str:
    """A CIDR (or bare address, taken as a host route) in canonical form: host bits cleared,
    compressed IPv6, always with a prefix length. Raises ValueError."""
    return _normalize_cidr(value, ethertype)


@lru_cache(maxsize=CACHE_SIZE)
def _normalize_cidr(value: str, ethertype: str | None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a CIDR")
    text = value.strip()
    address, slash, length_text = text.partition("/")
    bits = 128 if ":" in address else 32
    if not slash or length_text == str(bits):
        # A host route (most remote-group members): no bits to clear, the fast path.
        canonical = _canonical_address(address)
        if canonical is None:
            raise ValueError(f"{value!r} is not a valid CIDR")
        version = 6 if bits == 128 else 4
        if ethertype is not None and version != _VERSION_BY_ETHERTYPE[ethertype]:
            raise ValueError(f"{value!r} is an IPv{version} CIDR in an {ethertype} rule")
        return f"{canonical}/{bits}"
    parsed = _parse_address(address)
    if parsed is None:
        raise ValueError(f"{value!r} is not a valid CIDR")
    family, packed = parsed
    version = 4 if family == socket.AF_INET else 6
    if length_text.isdigit() and int(length_text) <= bits:
        length = int(length_text)
    else:
        raise ValueError(f"{value!r} has a bad prefix length")
    if ethertype is not None and version != _VERSION_BY_ETHERTYPE[ethertype]:
        raise ValueError(f"{value!r} is an IPv{version} CIDR in an {ethertype} rule")
    number = int.from_bytes(packed, "big")
    number &= ((1 << bits) - 1) ^ ((1 << (bits - length)) - 1)
    network = socket.inet_ntop(family, number.to_bytes(bits // 8, "big"))
    return f"{_canonical(family, network)}/{length}"


def _parse_address(text: str) -> tuple[int, bytes] | None:
    """(address family, packed) for a strict dotted quad or an IPv6 address, else None."""
    try:
        if ":" in text:
            return socket.AF_INET6, socket.inet_pton(socket.AF_INET6, text)
        return socket.AF_INET, socket.inet_pton(socket.AF_INET, text)
    except (OSError, ValueError):
        return None


def _canonical_address(text: str) -> str | None:
    """The canonical text of a strict dotted quad or IPv6 address, else None (`_parse_address`
    and `_canonical` in one: a cold validation makes thousands of these calls)."""
    try:
        if ":" in text:
            canonical = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, text))
            return canonical if "." not in canonical else _canonical(socket.AF_INET6, canonical)
        return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, text))
    except (OSError, ValueError):
        return None


def _canonical(family: int, text: str) -> str:
    # inet_ntop writes IPv4-mapped addresses in dotted form; ipaddress (and iptables-save)
    # do not. Rare enough to take the slow path.
    if family == socket.AF_INET6 and "." in text:
        return str(ipaddress.IPv6Address(text))
    return text


@lru_cache(maxsize=CACHE_SIZE)
def normalize_address(value: str) -> str:
    """A single IPv4/IPv6 address in canonical text. Raises ValueError."""
    canonical = _canonical_address(value.strip()) if isinstance(value, str) else None
    if canonical is None:
        raise ValueError(f"{value!r} is not a valid IP address")
    return canonical


def address_version(value: str) -> int:
    """4 or 6 for a normalised address or CIDR."""
    return 6 if ":" in value else 4


@lru_cache(maxsize=CACHE_SIZE)
def normalize_mac(value: str) -> str:
    """A unicast Ethernet MAC as lower-case colon-separated hex. Raises ValueError."""
    text = value.strip().lower() if isinstance(value, str) else ""
    if not _MAC.match(text):
        raise ValueError(f"{value!r} is not a MAC address")
    text = text.replace("-", ":")
    if int(text[:2], 16) & 1:
        raise ValueError(f"{value!r} is a multicast MAC address")
    return text


def _int_or_none(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise ValueError(f"{value!r} is not an integer")
    return value


@lru_cache(maxsize=CACHE_SIZE)
def validate_rule(rule: SecurityGroupRule) -> SecurityGroupRule:
    """The rule normalised (protocol spelling, CIDR form, single port filled in), or
    FirewallError naming the rule id and the field (the first problem `rule_problems` finds)."""
    problems, normalised = _check_rule(rule)
    if problems:
        raise problems[0]
    assert normalised is not None
    return normalised


def rule_problems(rule: SecurityGroupRule) -> list[FirewallError]:
    """Every problem of the rule, each with a field, a `code` and the `values` it is about:
    the one rule contract the API, the forms and the compiler share."""
    return _check_rule(rule)[0]


def _check_rule(rule: SecurityGroupRule) -> tuple[list[FirewallError], SecurityGroupRule | None]:
    problems: list[FirewallError] = []
    rule_id = str(rule.id)
    if not isinstance(rule.id, str) or not names.SAFE_ID.match(rule.id):
        problems.append(rule_error(rule_id, "id", "must be letters, digits and '_.:-'", "bad-id"))
    if rule.direction not in DIRECTIONS:
        problems.append(
            rule_error(
                rule_id,
                "direction",
                f"{rule.direction!r} is not ingress or egress",
                "direction",
                value=rule.direction,
            )
        )
    ethertype_ok = rule.ethertype in ETHERTYPES
    if not ethertype_ok:
        problems.append(
            rule_error(
                rule_id,
                "ethertype",
                f"{rule.ethertype!r} is not IPv4 or IPv6",
                "ethertype",
                value=rule.ethertype,
            )
        )
    protocol = _rule_protocol(rule, problems) if ethertype_ok else None
    low, high = _rule_ports(rule, protocol, problems)
    remote_prefix = _rule_remote(rule, problems, ethertype_ok)
    if problems:
        return problems, None
    if (protocol, low, high, remote_prefix) == (
        rule.protocol,
        rule.port_range_min,
        rule.port_range_max,
        rule.remote_ip_prefix,
    ):
        return [], rule
    return [], dataclasses.replace(
        rule,
        protocol=protocol,
        port_range_min=low,
        port_range_max=high,
        remote_ip_prefix=remote_prefix,
    )


def _rule_protocol(rule: SecurityGroupRule, problems: list[FirewallError]) -> str | None:
    try:
        return normalize_protocol(rule.protocol, rule.ethertype)
    except UnknownProtocol as error:
        problems.append(
            rule_error(
                str(rule.id),
                "protocol",
                str(error),
                error.code,
                protocol=rule.protocol,
                ethertype=rule.ethertype,
            )
        )
        return None


def _rule_ports(
    rule: SecurityGroupRule, protocol: str | None, problems: list[FirewallError]
) -> tuple[int | None, int | None]:
    """The rule's port range (or ICMP type and code) as numbers; a lone minimum port is one
    port. What the two fields may hold depends on the protocol."""
    rule_id = str(rule.id)
    try:
        low = _int_or_none(rule.port_range_min)
        high = _int_or_none(rule.port_range_max)
    except ValueError as error:
        problems.append(
            rule_error(rule_id, "port_range_min/port_range_max", str(error), "not-an-integer")
        )
        return None, None
    if low is None and high is None:
        return None, None
    if any(p.field == "protocol" for p in problems):
        return low, high  # what the ports mean depends on the protocol
    if takes_ports(protocol):
        return _port_range(rule_id, low, high, problems)
    if takes_icmp_type(protocol):
        problems.extend(_icmp_problems(rule_id, low, high))
        return low, high
    shown = protocol or "any protocol"
    problems.append(
        rule_error(
            rule_id,
            "port_range_min",
            f"{shown} takes no port range (only tcp, udp, ...)",
            "no-ports-for-protocol",
            protocol=protocol,
        )
    )
    return low, high


def _port_range(
    rule_id: str, low: int | None, high: int | None, problems: list[FirewallError]
) -> tuple[int | None, int | None]:
    if low is None:
        problems.append(
            rule_error(
                rule_id,
                "port_range_min",
                "a maximum port needs a minimum port",
                "port-max-without-min",
                max=high,
            )
        )
        return low, high
    high = low if high is None else high
    outside = [
        rule_error(
            rule_id, field, f"port {value} is outside 1-65535", "port-out-of-range", port=value
        )
        for field, value in (("port_range_min", low), ("port_range_max", high))
        if not 1 <= value <= 65535
    ]
    problems.extend(outside)
    if not outside and low > high:
        problems.append(
            rule_error(
                rule_id,
                "port_range_min",
                f"minimum port {low} is above maximum {high}",
                "port-range-reversed",
                min=low,
                max=high,
            )
        )
    return low, high


def _icmp_problems(rule_id: str, low: int | None, high: int | None) -> list[FirewallError]:
    found = []
    if low is None:
        found.append(
            rule_error(
                rule_id,
                "port_range_max",
                "an ICMP code needs an ICMP type",
                "icmp-code-without-type",
                icmp_code=high,
            )
        )
    for field, kind, value in (("port_range_min", "type", low), ("port_range_max", "code", high)):
        if value is not None and not 0 <= value <= 255:
            found.append(
                rule_error(
                    rule_id,
                    field,
                    f"ICMP {kind} {value} is outside 0-255",
                    "icmp-out-of-range",
                    kind=kind,
                    value=value,
                )
            )
    return found


def _rule_remote(
    rule: SecurityGroupRule, problems: list[FirewallError], ethertype_ok: bool
) -> str | None:
    rule_id = str(rule.id)
    remote_prefix = rule.remote_ip_prefix
    if remote_prefix is not None and rule.remote_group_id is not None:
        problems.append(
            rule_error(
                rule_id,
                "remote_ip_prefix",
                "remote_ip_prefix and remote_group_id are exclusive",
                "prefix-and-group",
            )
        )
    if remote_prefix is not None:
        try:
            remote_prefix = normalize_cidr(remote_prefix)
        except ValueError as error:
            problems.append(
                rule_error(
                    rule_id, "remote_ip_prefix", str(error), "bad-cidr", value=rule.remote_ip_prefix
                )
            )
            return None
        version = address_version(remote_prefix)
        if ethertype_ok and version != _VERSION_BY_ETHERTYPE[rule.ethertype]:
            problems.append(
                rule_error(
                    rule_id,
                    "remote_ip_prefix",
                    f"{rule.remote_ip_prefix!r} is an IPv{version} CIDR "
                    f"in an {rule.ethertype} rule",
                    "cidr-family",
                    value=rule.remote_ip_prefix,
                    ethertype=rule.ethertype,
                )
            )
    if rule.remote_group_id is not None and not (
        isinstance(rule.remote_group_id, str) and names.SAFE_ID.match(rule.remote_group_id)
    ):
        problems.append(
            rule_error(rule_id, "remote_group_id", "must be letters, digits and '_.:-'", "bad-id")
        )
    return remote_prefix


def validate_group(group: SecurityGroup) -> SecurityGroup:
    if not isinstance(group.id, str) or not names.SAFE_ID.match(group.id):
        raise group_error(str(group.id), "id", "must be letters, digits and '_.:-'")
    rules = tuple(validate_rule(rule) for rule in group.rules)
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise group_error(group.id, "rules", f"rule id {rule.id} appears twice")
        seen.add(rule.id)
    if all(new is old for new, old in zip(rules, group.rules, strict=True)):
        return group
    return dataclasses.replace(group, rules=rules)


def _port_addresses(port_id: str, field: str, values: tuple[str, ...]) -> tuple[str, ...]:
    """The addresses normalised (the same tuple when they already were), or the first bad
    one's error."""
    try:
        normalised = tuple(map(normalize_address, values))
    except ValueError as error:
        raise port_error(port_id, field, str(error)) from None
    return values if normalised == values else normalised


@lru_cache(maxsize=CACHE_SIZE)
def _safe_id(value: object) -> bool:
    return isinstance(value, str) and names.SAFE_ID.match(value) is not None


def _check_port_names(port: Port, device: str, chain_prefix: str) -> None:
    """The id, devices and conntrack zone the kernel will be given for the port."""
    if not _safe_id(port.id):
        raise port_error(str(port.id), "id", "must be letters, digits and '_.:-'")
    problem = names.interface_name_problem(device)
    if problem:
        raise port_error(port.id, "device", problem)
    if port.bridge is not None:
        problem = names.interface_name_problem(port.bridge)
        if problem:
            raise port_error(port.id, "bridge", problem)
    if port.conntrack_zone is not None and not _is_zone(port.conntrack_zone):
        raise port_error(port.id, "conntrack_zone", f"{port.conntrack_zone!r} is not 1-65535")
    # i/o/s chains: prefix + "-" + letter + up to 10 characters of the id.
    if (
        len(chain_prefix) + 2 + min(len(port.id), names.CHAIN_ID_CHARS)
        > names.MAX_CHAIN_NAME_LENGTH
    ):
        chain = names.ingress_chain(chain_prefix, port.id)
        raise port_error(port.id, "id", names.chain_name_problem(chain) or "chain name too long")


def _address_pair(port_id: str, pair: AddressPair) -> AddressPair:
    """The pair normalised (the same object when it already was)."""
    try:
        # A bare address stays bare (the anti-spoof rule adds /32 or /128).
        if "/" in pair.ip_address:
            ip = normalize_cidr(pair.ip_address)
        else:
            ip = normalize_address(pair.ip_address)
    except (TypeError, ValueError) as error:
        raise port_error(port_id, "allowed_address_pairs", str(error)) from None
    try:
        pair_mac = None if pair.mac_address is None else normalize_mac(pair.mac_address)
    except ValueError as error:
        raise port_error(port_id, "allowed_address_pairs", str(error)) from None
    same = ip == pair.ip_address and pair_mac == pair.mac_address
    return pair if same else AddressPair(ip_address=ip, mac_address=pair_mac)


def validate_port(port: Port, chain_prefix: str = "neutron-openvswi") -> Port:
    """The port normalised (device filled in, MAC lower-case, canonical addresses)."""
    device = port.device if port.device is not None else names.device_name(str(port.id))
    _check_port_names(port, device, chain_prefix)
    try:
        mac = normalize_mac(port.mac_address)
    except ValueError as error:
        raise port_error(port.id, "mac_address", str(error)) from None
    fixed_ips = _port_addresses(port.id, "fixed_ips", port.fixed_ips)
    dhcp_servers = _port_addresses(port.id, "dhcp_servers", port.dhcp_servers)
    pairs = [_address_pair(port.id, pair) for pair in port.allowed_address_pairs]
    for group_id in port.security_groups:
        if not _safe_id(group_id):
            raise port_error(port.id, "security_groups", f"bad group id {group_id!r}")
    _check_port_logging(port)
    changed = (
        device != port.device
        or mac != port.mac_address
        or fixed_ips != port.fixed_ips
        or dhcp_servers != port.dhcp_servers
        or any(new is not old for new, old in zip(pairs, port.allowed_address_pairs, strict=True))
    )
    if not changed:
        return port
    return dataclasses.replace(
        port,
        device=device,
        mac_address=mac,
        fixed_ips=fixed_ips,
        dhcp_servers=dhcp_servers,
        allowed_address_pairs=tuple(pairs),
    )


def _check_port_logging(port: Port) -> None:
    if port.log_events is None:
        return
    if port.log_events not in LOG_EVENTS:
        raise port_error(port.id, "log_events", f"must be one of {', '.join(LOG_EVENTS)}")
    if names.LOG_PREFIX_HEAD_LENGTH + len(port.id) > names.MAX_LOG_PREFIX_LENGTH:
        longest = names.MAX_LOG_PREFIX_LENGTH - names.LOG_PREFIX_HEAD_LENGTH
        raise port_error(port.id, "id", f"a logged port's id has at most {longest} characters")


def _bounded(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def validate_log_settings(settings: LogSettings) -> LogSettings:
    """The packet-log settings as they are, or FirewallError naming the bad field."""
    checks = (
        ("rate", settings.rate, MAX_LOG_RATE),
        ("burst", settings.burst, MAX_LOG_BURST),
        ("nflog_group_v4", settings.nflog_group_v4, MAX_NFLOG_GROUP),
        ("nflog_group_v6", settings.nflog_group_v6, MAX_NFLOG_GROUP),
    )
    for field, value, high in checks:
        # NFLOG group 0 is legal but iptables-save leaves it out; 1.. keeps render == save.
        if not _bounded(value, 1, high):
            raise FirewallError("log settings", "host", field, f"{value!r} is not 1-{high}")
    return settings


@lru_cache(maxsize=CACHE_SIZE)
def _validate_members(group_id: str, members: tuple[str, ...]) -> tuple[str, ...]:
    # Thousands per cold compile: mapped in C straight onto the cached normaliser; the first
    # bad member's error is the one raised, as a loop would.
    try:
        return tuple(map(_normalize_cidr, members, repeat(None)))
    except ValueError as error:
        raise group_error(group_id, "members", str(error)) from None


def _one(member: str) -> str:
    return normalize_cidr(member)


def validate_chain_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not names.SAFE_INTERFACE.match(prefix):
        raise FirewallError("host", None, "chain_prefix", f"bad chain prefix {prefix!r}")
    problem = names.chain_name_problem(names.fallback_chain(prefix))
    if problem:
        raise FirewallError("host", None, "chain_prefix", problem)
    return prefix


class ValidationMemo:
    """Identity memo of validated objects: a compile cache re-validates only new objects
    (cheaper than hashing every frozen port again)."""

    def __init__(self) -> None:
        self.ports: dict[str, tuple[Port, str, Port]] = {}
        self.groups: dict[str, tuple[SecurityGroup, SecurityGroup]] = {}
        self.members = MemberMemo()  # remote groups' members: a few came or went

    def forget_all_but(self, port_ids: set[str], group_ids: set[str]) -> None:
        for port_id in [pid for pid in self.ports if pid not in port_ids]:
            del self.ports[port_id]
        for group_id in [gid for gid in self.groups if gid not in group_ids]:
            del self.groups[group_id]

    def port(self, port: Port, prefix: str) -> Port:
        entry = self.ports.get(port.id)
        if entry is not None and entry[0] is port and entry[1] == prefix:
            return entry[2]
        result = validate_port(port, prefix)
        self.ports[port.id] = (port, prefix, result)
        return result

    def group(self, group: SecurityGroup) -> SecurityGroup:
        entry = self.groups.get(group.id)
        if entry is not None and entry[0] is group:
            return entry[1]
        result = validate_group(group)
        self.groups[group.id] = (group, result)
        return result


def validate_host_state(state: HostState, *, memo: ValidationMemo | None = None) -> HostState:
    """The whole host state normalised, or FirewallError for the first problem found."""
    memo = memo if memo is not None else ValidationMemo()
    memo.members.begin()
    prefix = validate_chain_prefix(state.chain_prefix)
    groups = tuple(memo.group(group) for group in state.security_groups)
    group_by_id: dict[str, SecurityGroup] = {}
    for group in groups:
        if group.id in group_by_id:
            raise group_error(group.id, "id", "appears twice in the host state")
        group_by_id[group.id] = group
    members = []
    member_ids: set[str] = set()
    for group_id, addresses in state.remote_group_members:
        if group_id in member_ids:
            raise group_error(group_id, "members", "listed twice")
        member_ids.add(group_id)
        members.append(
            (group_id, memo.members.validate(group_id, tuple(addresses), _validate_members, _one))
        )
    memo.members.forget_all_but(member_ids)
    ports = tuple(memo.port(port, prefix) for port in state.ports)
    _check_ports_distinct(ports)
    used_groups: set[str] = set()
    for port in ports:
        for group_id in port.security_groups:
            if group_id not in group_by_id:
                raise port_error(port.id, "security_groups", f"unknown security group {group_id}")
            if port.port_security_enabled:
                used_groups.add(group_id)
    _check_remote_groups(groups, used_groups, group_by_id, member_ids)
    validate_log_settings(state.log_settings)
    zones = []
    for key, zone in state.conntrack_zones:
        if not _is_zone(zone):
            raise FirewallError("conntrack zone", str(key), "zone", f"{zone!r} is not 1-65535")
        zones.append((key, zone))
    if state.compat not in COMPATS:
        raise FirewallError(
            "host", state.host, "compat", f"{state.compat!r} is not one of {', '.join(COMPATS)}"
        )
    return dataclasses.replace(
        state,
        ports=ports,
        security_groups=groups,
        remote_group_members=tuple(members),
        conntrack_zones=tuple(zones),
    )


def _is_zone(zone: object) -> bool:
    return isinstance(zone, int) and not isinstance(zone, bool) and MIN_ZONE <= zone <= MAX_ZONE


def _check_ports_distinct(ports: tuple[Port, ...]) -> None:
    by_id: set[str] = set()
    by_device: dict[str, str] = {}
    by_chain_id: dict[str, str] = {}
    for port in ports:
        if port.id in by_id:
            raise port_error(port.id, "id", "appears twice in the host state")
        by_id.add(port.id)
        assert port.device is not None
        other = by_device.setdefault(port.device, port.id)
        if other != port.id:
            raise port_error(port.id, "device", f"device {port.device} is also port {other}'s")
        chain_id = port.id[: names.CHAIN_ID_CHARS]
        other = by_chain_id.setdefault(chain_id, port.id)
        if other != port.id:
            raise port_error(
                port.id, "id", f"its chains would collide with port {other}'s ({chain_id})"
            )


def _check_remote_groups(
    groups: tuple[SecurityGroup, ...],
    used_groups: set[str],
    group_by_id: dict[str, SecurityGroup],
    member_ids: set[str],
) -> None:
    set_owner: dict[str, str] = {}
    for group in groups:
        if group.id not in used_groups:
            continue
        for rule in group.rules:
            remote = rule.remote_group_id
            if remote is None:
                continue
            if remote not in group_by_id and remote not in member_ids:
                raise rule_error(rule.id, "remote_group_id", f"unknown remote group {remote}")
            set_name = names.ipset_name(rule.ethertype, remote)
            other = set_owner.setdefault(set_name, remote)
            if other != remote:
                raise group_error(
                    remote, "id", f"its ipset name {set_name} collides with group {other}'s"
                )


def clear_caches() -> None:
    """Forget cached validations (benchmarks use it to measure cold runs)."""
    for cached in (
        validate_rule,
        _validate_members,
        _safe_id,
        normalize_mac,
        names.interface_name_problem,
        _normalize_cidr,
        normalize_address,
    ):
        cached.cache_clear()
