"""Scenario JSON (its format: bench/README.md) -> a validated HostState for one host."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sgweb.firewall.errors import FirewallError
from sgweb.firewall.model import (
    COMPAT_NEUTRON,
    DEFAULT_CHAIN_PREFIX,
    AddressPair,
    HostState,
    Port,
    SecurityGroup,
    SecurityGroupRule,
)
from sgweb.firewall.validate import validate_host_state


def load_scenario(source: str | Path | Mapping[str, Any], host: str | None = None) -> HostState:
    """The desired state of `host` (None: every port of the document).

    A port without a host belongs to every host. Remote group members are the fixed IPs and
    allowed-address-pair IPs of every port of the document in that group, whatever its host,
    listed by port id (the order Neutron lists ports in, which is the article's order).
    Raises FirewallError for a malformed document or anything the kernel would refuse.
    """
    return validate_host_state(build_scenario_state(source, host))


def build_scenario_state(
    source: str | Path | Mapping[str, Any], host: str | None = None
) -> HostState:
    """Like load_scenario, without the validation (benchmarks time that with the compile)."""
    document = _document(source)
    try:
        groups = tuple(_group(raw) for raw in _list(document, "security_groups"))
        all_ports = tuple(_port(raw) for raw in _list(document, "ports"))
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, FirewallError):
            raise
        raise FirewallError("scenario", None, None, f"malformed document: {error}") from None
    ports = tuple(p for p in all_ports if host is None or p.host is None or p.host == host)
    remote_ids = sorted({r.remote_group_id for g in groups for r in g.rules if r.remote_group_id})
    members = tuple((gid, _members_of(gid, all_ports)) for gid in remote_ids)
    zones = document.get("conntrack_zones") or {}
    return HostState(
        ports=ports,
        security_groups=groups,
        remote_group_members=members,
        enable_ipset=bool(document.get("enable_ipset", True)),
        chain_prefix=str(document.get("chain_prefix") or DEFAULT_CHAIN_PREFIX),
        host=host,
        conntrack_zones=tuple(sorted((str(k), v) for k, v in dict(zones).items())),
        compat=str(document.get("compat") or COMPAT_NEUTRON),
    )


def scenario_hosts(source: str | Path | Mapping[str, Any]) -> tuple[str | None, ...]:
    """The hosts a document names, sorted; (None,) when no port names one."""
    document = _document(source)
    hosts = sorted({raw["host"] for raw in _list(document, "ports") if raw.get("host")})
    return tuple(hosts) if hosts else (None,)


def _document(source: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    try:
        if isinstance(source, str) and source.lstrip().startswith("{"):
            document = json.loads(source)
        else:
            document = json.loads(Path(source).read_text(encoding="utf-8"))
    except OSError as error:
        raise FirewallError("scenario", str(source), None, error.strerror or str(error)) from None
    except json.JSONDecodeError as error:
        raise FirewallError("scenario", None, None, f"not valid JSON: {error}") from None
    if not isinstance(document, Mapping):
        raise FirewallError("scenario", None, None, "the document must be a JSON object")
    return document


def _list(document: Mapping[str, Any], key: str) -> list[Any]:
    value = document.get(key) or []
    if not isinstance(value, list):
        raise FirewallError("scenario", None, key, "must be a list")
    return value


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _rule(raw: Mapping[str, Any]) -> SecurityGroupRule:
    return SecurityGroupRule(
        id=str(raw["id"]),
        direction=raw["direction"],
        ethertype=raw.get("ethertype", "IPv4"),
        protocol=_optional_str(raw.get("protocol")),
        port_range_min=raw.get("port_range_min"),
        port_range_max=raw.get("port_range_max"),
        remote_ip_prefix=raw.get("remote_ip_prefix"),
        remote_group_id=raw.get("remote_group_id"),
    )


def _group(raw: Mapping[str, Any]) -> SecurityGroup:
    return SecurityGroup(
        id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        stateful=bool(raw.get("stateful", True)),
        rules=tuple(_rule(rule) for rule in raw.get("rules") or ()),
    )


def _port(raw: Mapping[str, Any]) -> Port:
    pairs = tuple(
        AddressPair(ip_address=pair["ip_address"], mac_address=pair.get("mac_address"))
        for pair in raw.get("allowed_address_pairs") or ()
    )
    return Port(
        id=str(raw["id"]),
        mac_address=raw["mac_address"],
        fixed_ips=tuple(raw.get("fixed_ips") or ()),
        security_groups=tuple(raw.get("security_groups") or ()),
        allowed_address_pairs=pairs,
        port_security_enabled=bool(raw.get("port_security_enabled", True)),
        dhcp_servers=tuple(raw.get("dhcp_servers") or ()),
        host=raw.get("host"),
        device=raw.get("device"),
        network_id=raw.get("network_id"),
        name=str(raw.get("name") or ""),
        bridge=raw.get("bridge"),
        conntrack_zone=raw.get("conntrack_zone"),
    )


def _members_of(group_id: str, ports: tuple[Port, ...]) -> tuple[str, ...]:
    members: dict[str, None] = {}
    for port in sorted(ports, key=lambda p: p.id):
        if group_id not in port.security_groups:
            continue
        for address in port.fixed_ips:
            members.setdefault(address, None)
        for pair in port.allowed_address_pairs:
            members.setdefault(pair.ip_address, None)
    return tuple(members)
