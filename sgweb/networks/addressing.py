"""MAC generation and fixed-IP allocation from a subnet."""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from collections.abc import Iterator

from sgweb.networks.models import FixedIP, Port, Subnet

MAC_PREFIX = "fa:16:3e"  # OpenStack's base MAC


def random_mac() -> str:
    tail = secrets.token_bytes(3)
    return MAC_PREFIX + "".join(f":{byte:02x}" for byte in tail)


def unused_mac(network_id: uuid.UUID | str, attempts: int = 16) -> str:
    for _ in range(attempts):
        mac = random_mac()
        if not Port.objects.filter(network_id=network_id, mac_address=mac).exists():
            return mac
    raise RuntimeError("could not find a free MAC address")  # 16M addresses; not reachable


def reserved_addresses(subnet: Subnet) -> set[str]:
    """Addresses a port may never get: network, broadcast, gateway and DHCP servers."""
    network = ipaddress.ip_network(subnet.cidr)
    reserved = {str(network.network_address)}
    if network.version == 4:
        reserved.add(str(network.broadcast_address))
    if subnet.gateway_ip:
        reserved.add(subnet.gateway_ip)
    reserved.update(subnet.dhcp_servers)
    return reserved


def _candidates(subnet: Subnet) -> Iterator[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    network = ipaddress.ip_network(subnet.cidr)
    if subnet.allocation_pools:
        for pool in subnet.allocation_pools:
            current = ipaddress.ip_address(pool["start"])
            end = ipaddress.ip_address(pool["end"])
            while int(current) <= int(end):  # one family: the pool was validated
                yield current
                current += 1
    else:
        yield from network.hosts()


def allocate_ip(subnet: Subnet, taken: set[str] | None = None) -> str | None:
    """The lowest free address of the subnet's pools, or None when it is full."""
    used = set(FixedIP.objects.filter(subnet=subnet).values_list("ip_address", flat=True))
    used |= reserved_addresses(subnet)
    used |= taken or set()
    for candidate in _candidates(subnet):
        text = str(candidate)
        if text not in used:
            return text
    return None
