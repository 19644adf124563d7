"""Network, subnet and port checks shared by the API, the dashboard forms and the actions."""

from __future__ import annotations

import ipaddress
import re
from typing import Any, SupportsInt, cast

from sgweb.tenancy.validators import Errors

MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
MAX_ALLOWED_ADDRESS_PAIRS = 10  # Neutron's default max_allowed_address_pair


def clean_mac(errors: Errors, field: str, value: object) -> str | None:
    if not isinstance(value, str) or not MAC_RE.match(value.strip().lower()):
        errors.add(field, f"'{value}' is not a valid MAC address.")
        return None
    mac = value.strip().lower()
    if int(mac[:2], 16) & 1:
        errors.add(field, f"'{value}' is a multicast MAC address, not a NIC's.")
    if mac == "00:00:00:00:00:00":
        errors.add(field, "The all-zero MAC address is not a valid port address.")
    return mac


def clean_ip(errors: Errors, field: str, value: object) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        errors.add(field, f"'{value}' is not a valid IP address.")
        return None


def clean_cidr(errors: Errors, field: str, value: object, *, strict: bool = False) -> str | None:
    """An IP network; with `strict` the host bits must be zero (a subnet's CIDR)."""
    if not isinstance(value, str) or not value.strip():
        errors.add(field, f"'{value}' is not a valid CIDR.")
        return None
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        errors.add(field, f"'{value}' is not a valid CIDR.")
        return None
    if strict and str(network) != value.strip() and "/" in value:
        errors.add(field, f"'{value}' has host bits set; did you mean {network}?")
    return str(network)


def clean_ip_or_cidr(errors: Errors, field: str, value: object) -> str | None:
    """An address, or a CIDR (normalised to its network) as allowed address pairs take."""
    if not isinstance(value, str) or not value.strip():
        errors.add(field, f"'{value}' is not a valid IP address or CIDR.")
        return None
    text = value.strip()
    try:
        if "/" not in text:
            return str(ipaddress.ip_address(text))
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        errors.add(field, f"'{value}' is not a valid IP address or CIDR.")
        return None


def clean_subnet_values(
    errors: Errors,
    *,
    cidr: object,
    ip_version: object,
    gateway_ip: object,
    dhcp_servers: object,
    allocation_pools: object,
    enable_dhcp: bool,
    gateway_given: bool,
) -> dict[str, Any]:
    """Cleans a subnet's addressing; fills in Neutron's defaults (.1 gateway, .2 DHCP server)."""
    network = _clean_network(errors, cidr, ip_version)
    if network is None:
        return {}
    gateway: str | None
    if gateway_given:
        gateway = _clean_inside(errors, "gateway_ip", gateway_ip, network, "Gateway")
    else:
        gateway = str(network.network_address + 1)
    servers: list[str] = []
    if dhcp_servers is None:
        if enable_dhcp:
            servers = [str(network.network_address + 2)]
    elif not isinstance(dhcp_servers, list):
        errors.add("dhcp_servers", "dhcp_servers must be a list of addresses.")
    else:
        for value in dhcp_servers:
            server = _clean_inside(errors, "dhcp_servers", value, network, "DHCP server")
            if server:
                servers.append(server)
    return {
        "cidr": str(network),
        "ip_version": network.version,
        "gateway_ip": gateway,
        "dhcp_servers": servers,
        "allocation_pools": _clean_pools(errors, allocation_pools, network),
    }


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _clean_network(errors: Errors, cidr: object, ip_version: object) -> Network | None:
    network_text = clean_cidr(errors, "cidr", cidr, strict=True)
    version: int | None = None
    if ip_version not in (None, ""):
        try:
            version = int(cast(SupportsInt | str, ip_version))  # else TypeError, caught
        except (TypeError, ValueError):
            version = None
        if version not in (4, 6):
            errors.add("ip_version", f"'{ip_version}' is not in [4, 6].")
            version = None
    if network_text is None:
        return None
    network = ipaddress.ip_network(network_text)
    if version is not None and version != network.version:
        errors.add("cidr", f"CIDR {network_text} is not an IPv{version} network.")
    max_prefix = 30 if network.version == 4 else 126
    if network.prefixlen > max_prefix:
        errors.add("cidr", f"CIDR {network_text} is too small to hold ports.")
        return None
    return network


def _clean_inside(
    errors: Errors, field: str, value: object, network: Network, label: str
) -> str | None:
    """An address inside the subnet (None, with an error, when it is not)."""
    if value in (None, ""):
        return None
    address = clean_ip(errors, field, value)
    if address and ipaddress.ip_address(address) not in network:
        errors.add(field, f"{label} {address} is not inside {network}.")
        return None
    return address


def _clean_pools(
    errors: Errors, allocation_pools: object, network: Network
) -> list[dict[str, str]]:
    pools: list[dict[str, str]] = []
    if allocation_pools in (None, []):
        return pools
    if not isinstance(allocation_pools, list):
        errors.add("allocation_pools", "allocation_pools must be a list of {start, end}.")
        return pools
    for pool in allocation_pools:
        if not isinstance(pool, dict):
            errors.add("allocation_pools", "Each pool needs a start and an end.")
            continue
        start = clean_ip(errors, "allocation_pools", pool.get("start"))
        end = clean_ip(errors, "allocation_pools", pool.get("end"))
        if not start or not end:
            continue
        start_ip, end_ip = ipaddress.ip_address(start), ipaddress.ip_address(end)
        if start_ip not in network or end_ip not in network:
            errors.add("allocation_pools", f"Pool {start}-{end} is not inside {network}.")
        elif int(start_ip) > int(end_ip):  # one family: both are inside the network
            errors.add("allocation_pools", f"Pool {start}-{end} starts after it ends.")
        else:
            pools.append({"start": start, "end": end})
    return pools


def clean_address_pairs(
    errors: Errors, value: object, port_mac: str | None
) -> list[tuple[str, str]] | None:
    """[{"ip_address", "mac_address"?}] -> [(ip_or_cidr, mac)], the port's MAC when omitted."""
    if value is None:
        return []
    if not isinstance(value, list):
        errors.add("allowed_address_pairs", "allowed_address_pairs must be a list.")
        return None
    if len(value) > MAX_ALLOWED_ADDRESS_PAIRS:
        errors.add(
            "allowed_address_pairs",
            f"At most {MAX_ALLOWED_ADDRESS_PAIRS} allowed address pairs per port.",
        )
        return None
    pairs: list[tuple[str, str]] = []
    for item in value:
        if not isinstance(item, dict) or "ip_address" not in item:
            errors.add("allowed_address_pairs", "AllowedAddressPair must contain ip_address.")
            continue
        ip = clean_ip_or_cidr(errors, "allowed_address_pairs", item["ip_address"])
        mac_value = item.get("mac_address")
        mac = (
            port_mac
            if mac_value in (None, "")
            else clean_mac(errors, "allowed_address_pairs", mac_value)
        )
        if ip and mac:
            if (ip, mac) in pairs:
                errors.add("allowed_address_pairs", f"Duplicate address pair {ip} {mac}.")
            pairs.append((ip, mac))
    return pairs
