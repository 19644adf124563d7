"""HostState <-> JSON, the wire format between the control plane and the host agents.

The control plane publishes one document per host and the agent decodes it, so both sides must
agree byte for byte: the digest the agent reports back is the sha256 of this text. Output is
deterministic (sorted keys, fixed separators, tuples kept in their given order) so the same state
always gives the same digest, whichever web server encoded it. No Django, no I/O.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sgweb.firewall.model import (
    DEFAULT_CHAIN_PREFIX,
    AddressPair,
    HostState,
    Port,
    SecurityGroup,
    SecurityGroupRule,
)

# Bumped when the document's shape changes incompatibly; an agent refuses what it cannot read
# rather than applying a misread firewall.
FORMAT_VERSION = 1


class CodecError(ValueError):
    """The text is not a HostState document this version understands."""


def _rule(rule: SecurityGroupRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "direction": rule.direction,
        "ethertype": rule.ethertype,
        "protocol": rule.protocol,
        "port_range_min": rule.port_range_min,
        "port_range_max": rule.port_range_max,
        "remote_ip_prefix": rule.remote_ip_prefix,
        "remote_group_id": rule.remote_group_id,
    }


def _group(group: SecurityGroup) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "stateful": group.stateful,
        "rules": [_rule(rule) for rule in group.rules],
    }


def _port(port: Port) -> dict[str, Any]:
    return {
        "id": port.id,
        "mac_address": port.mac_address,
        "fixed_ips": list(port.fixed_ips),
        "security_groups": list(port.security_groups),
        "allowed_address_pairs": [
            {"ip_address": pair.ip_address, "mac_address": pair.mac_address}
            for pair in port.allowed_address_pairs
        ],
        "port_security_enabled": port.port_security_enabled,
        "dhcp_servers": list(port.dhcp_servers),
        "host": port.host,
        "device": port.device,
        "network_id": port.network_id,
        "name": port.name,
    }


def to_dict(state: HostState) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "host": state.host,
        "chain_prefix": state.chain_prefix,
        "enable_ipset": state.enable_ipset,
        "ports": [_port(port) for port in state.ports],
        "security_groups": [_group(group) for group in state.security_groups],
        "remote_group_members": [
            [group_id, list(addresses)] for group_id, addresses in state.remote_group_members
        ],
        "conntrack_zones": [[key, zone] for key, zone in state.conntrack_zones],
    }


def dumps(state: HostState) -> str:
    """The canonical JSON text of a host's desired state."""
    return json.dumps(to_dict(state), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def digest(text: str) -> str:
    """sha256 hex of the canonical text; what the agent reports it applied."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def from_dict(data: dict[str, Any]) -> HostState:
    if not isinstance(data, dict):
        raise CodecError("a host state document must be a JSON object")
    version = data.get("format")
    if version != FORMAT_VERSION:
        raise CodecError(f"host state format {version!r} is not {FORMAT_VERSION}")
    try:
        groups = tuple(
            SecurityGroup(
                id=str(group["id"]),
                name=str(group.get("name", "")),
                stateful=bool(group.get("stateful", True)),
                rules=tuple(
                    SecurityGroupRule(
                        id=str(rule["id"]),
                        direction=str(rule["direction"]),
                        ethertype=str(rule["ethertype"]),
                        protocol=None if rule.get("protocol") is None else str(rule["protocol"]),
                        port_range_min=_opt_int(rule.get("port_range_min")),
                        port_range_max=_opt_int(rule.get("port_range_max")),
                        remote_ip_prefix=rule.get("remote_ip_prefix"),
                        remote_group_id=rule.get("remote_group_id"),
                    )
                    for rule in group.get("rules", ())
                ),
            )
            for group in data.get("security_groups", ())
        )
        ports = tuple(
            Port(
                id=str(port["id"]),
                mac_address=str(port["mac_address"]),
                fixed_ips=tuple(str(ip) for ip in port.get("fixed_ips", ())),
                security_groups=tuple(str(g) for g in port.get("security_groups", ())),
                allowed_address_pairs=tuple(
                    AddressPair(
                        ip_address=str(pair["ip_address"]), mac_address=pair.get("mac_address")
                    )
                    for pair in port.get("allowed_address_pairs", ())
                ),
                port_security_enabled=bool(port.get("port_security_enabled", True)),
                dhcp_servers=tuple(str(ip) for ip in port.get("dhcp_servers", ())),
                host=port.get("host"),
                device=port.get("device"),
                network_id=port.get("network_id"),
                name=str(port.get("name", "")),
            )
            for port in data.get("ports", ())
        )
        members = tuple(
            (str(group_id), tuple(str(ip) for ip in addresses))
            for group_id, addresses in data.get("remote_group_members", ())
        )
        zones = tuple((str(key), int(zone)) for key, zone in data.get("conntrack_zones", ()))
        return HostState(
            ports=ports,
            security_groups=groups,
            remote_group_members=members,
            enable_ipset=bool(data.get("enable_ipset", True)),
            chain_prefix=str(data.get("chain_prefix") or DEFAULT_CHAIN_PREFIX),
            host=data.get("host"),
            conntrack_zones=zones,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CodecError(f"malformed host state document: {exc!r}") from exc


def loads(text: str) -> HostState:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CodecError(f"host state is not JSON: {exc}") from exc
    return from_dict(data)
