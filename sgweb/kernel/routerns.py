"""A router's namespace on a network node, plumbed like Neutron's Linux-bridge L3 agent (issue 16).

Per router a namespace ``qrouter-<router id>`` (with the lab's prefix in front: namespaces are
global, and several labs and test runs share one machine). Per router interface a veth: the
``qr-<port id[:11]>`` end inside the router namespace holds the subnets' gateway addresses and
the port's MAC; its peer ``tap<port id[:11]>`` is a port of that network's bridge in the network
node's (host) namespace, as the Linux-bridge agent plugs any other port. Forwarding on, duplicate
address detection off (a gateway's IPv6 address is usable at once, not tentative for ~2 s).

`plumb_router` is idempotent: it creates what is missing, sets addresses with ``replace``, and
removes ``qr-`` devices the router no longer has, so the agent can call it on every apply and a
restarted agent finds the namespace as it left it. Routing only: no NAT, no gateway port.

`route_via_gateway` gives a VM namespace a default route through its subnet's gateway, which is
how a VM reaches another subnet across the router.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sgweb.firewall.fwaas.model import DEVICE_ID_CHARS, Router, RouterInterface
from sgweb.kernel.netns import list_namespaces, remove_namespace
from sgweb.kernel.runner import CommandRunner

ROUTER_SYSCTLS = (
    "net.ipv4.ip_forward=1",
    "net.ipv6.conf.all.forwarding=1",
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
)
# A lab wants every rejected probe to see its ICMP unreachable (IPv6's default limit is one
# error per second per destination); a production router keeps the kernel's limits.
NO_ICMP_RATELIMIT = ("net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0")


def router_netns(router_id: str, prefix: str = "") -> str:
    return f"{prefix}qrouter-{router_id}"


def peer_device(port_id: str) -> str:
    """The host end of a router interface: a tap on the network's bridge, as any port's."""
    return "tap" + port_id[:DEVICE_ID_CHARS]


@dataclass(frozen=True, slots=True)
class RouterPort:
    """One router interface as plumbed: both veth ends, the bridge, the gateway addresses."""

    device: str  # qr-…, in the router namespace
    peer: str  # tap…, in the host namespace, a port of `bridge`
    bridge: str
    mac: str
    addresses: tuple[str, ...]  # gateway addresses with the subnet's prefix length


def router_ports(router: Router, bridge_for: Callable[[RouterInterface], str]) -> list[RouterPort]:
    """One RouterPort per port of `router` (a dual-stack port is one interface per subnet)."""
    by_port: dict[str, list[RouterInterface]] = {}
    for interface in router.interfaces:
        by_port.setdefault(interface.port_id, []).append(interface)
    ports = []
    for port_id in sorted(by_port):
        interfaces = sorted(by_port[port_id], key=lambda i: i.subnet_id)
        first = interfaces[0]
        addresses = tuple(
            f"{i.ip_address}/{ipaddress.ip_network(i.cidr, strict=False).prefixlen}"
            for i in interfaces
        )
        ports.append(
            RouterPort(first.device, peer_device(port_id), bridge_for(first), first.mac_address,
                       addresses)
        )  # fmt: skip
    return ports


def _devices(runner: CommandRunner, netns: str | None) -> set[str]:
    listing = runner.run(["ip", "-o", "link", "show"], netns=netns).stdout
    return {
        line.split(":")[1].strip().split("@")[0] for line in listing.splitlines() if ":" in line
    }


def plumb_router(
    runner: CommandRunner,
    host_netns: str | None,
    netns: str,
    ports: Sequence[RouterPort],
    *,
    extra_sysctls: Iterable[str] = (),
) -> None:
    """Make `netns` a router joined to each port's bridge in `host_netns` (see the module doc)."""
    if netns not in list_namespaces(netns):
        runner.run(["ip", "netns", "add", netns])
        runner.run(["ip", "link", "set", "lo", "up"], netns=netns)
    runner.run(["sysctl", "-q", "-w", *ROUTER_SYSCTLS, *extra_sysctls], netns=netns)
    present = _devices(runner, netns)
    wanted = {port.device for port in ports}
    for device in sorted(present - wanted):
        if device.startswith("qr-"):  # its peer goes with it
            runner.run(["ip", "link", "del", device], netns=netns, check=False)
    for port in ports:
        if port.device not in present:
            runner.run(["ip", "link", "del", port.peer], netns=host_netns, check=False)
            runner.run(
                ["ip", "link", "add", port.peer, "type", "veth", "peer", "name", port.device,
                 "netns", netns],
                netns=host_netns,
            )  # fmt: skip
        runner.run(["ip", "link", "set", port.peer, "master", port.bridge, "up"], netns=host_netns)
        commands = [f"link set {port.device} address {port.mac}"]
        for address in port.addresses:
            nodad = " nodad" if ":" in address else ""
            commands.append(f"addr replace {address} dev {port.device}{nodad}")
        commands.append(f"link set {port.device} up")
        runner.run(["ip", "-batch", "-"], input="\n".join(commands) + "\n", netns=netns)


def unplumb_router(runner: CommandRunner, netns: str) -> bool:
    """Remove a router's namespace; its qr- veths, and so their tap peers, go with it."""
    return remove_namespace(netns, runner)


def route_via_gateway(runner: CommandRunner, vm_netns: str, gateways: Iterable[str]) -> None:
    """Default routes of a VM namespace through its subnets' gateways (one per family): the
    gateway made on-link first, since lab VMs hold host-prefix addresses."""
    commands = []
    for gateway in gateways:
        # `ip -batch` takes no options per line: the addresses name the family.
        everything = "::/0" if ":" in gateway else "0.0.0.0/0"
        commands.append(f"route replace {gateway} dev eth0")
        commands.append(f"route replace {everything} via {gateway} dev eth0")
    runner.run(["ip", "-batch", "-"], input="\n".join(commands) + "\n", netns=vm_netns)
