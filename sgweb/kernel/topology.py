"""Compute hosts, VMs and an outside network built from network namespaces.

The shapes follow Neutron's Linux-bridge layout, because that is what our rules are written for:

* ``shared-bridge``: every VM's ``tap…`` is a port of one bridge in the host namespace, and that
  bridge has an uplink veth to the fabric.
* ``bridge-per-port`` (Neutron's hybrid driver): each VM's ``tap…`` sits on its own ``qbr…``
  bridge together with a ``qvb…`` veth whose ``qvo…`` peer is a port of the fabric bridge.

The fabric is one more namespace holding the bridge that joins all hosts and the "remote"
endpoints (outside machines, a DHCP server, ...). Every endpoint (VM or remote) has ``eth0`` with
on-link default routes, so all addresses are reachable on one flat L2 segment without routers.

Only the namespaces created here are touched; the root namespace's sysctls are never written.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from sgweb.kernel.netns import list_namespaces, remove_namespace, remove_namespaces
from sgweb.kernel.runner import CommandResult, CommandRunner
from sgweb.kernel.traffic import PROBE_SCRIPT, EndpointTraffic

__all__ = [  # the namespace helpers and the probe path are used from here by other modules
    "PROBE_SCRIPT",
    "list_namespaces",
    "remove_namespace",
    "remove_namespaces",
]

Shape = Literal["shared-bridge", "bridge-per-port"]
SHARED_BRIDGE: Shape = "shared-bridge"
BRIDGE_PER_PORT: Shape = "bridge-per-port"

IFNAMSIZ = 16  # including the terminating NUL
HOST_BRIDGE = "brq-sgweb"
HOST_UPLINK = "sgup0"
FABRIC_BRIDGE = "fabric0"


def tap_name(port_id: str) -> str:
    """The VM's host-side device, as the compiler and Neutron name it."""
    return "tap" + port_id[:11]


def _port_device(prefix: str, port_id: str) -> str:
    return prefix + port_id[:11]


@dataclass(frozen=True, slots=True)
class VmSpec:
    name: str  # short label, part of the namespace name
    port_id: str
    mac: str
    addresses: tuple[str, ...] = ()  # with prefix length: "192.0.2.10/24", "2001:db8::10/64"
    device: str | None = None  # host-side tap; None: "tap" + the first 11 characters of port_id

    @property
    def tap(self) -> str:
        return self.device or tap_name(self.port_id)


@dataclass(frozen=True, slots=True)
class HostSpec:
    name: str
    vms: tuple[VmSpec, ...] = ()
    shape: Shape = SHARED_BRIDGE


@dataclass(frozen=True, slots=True)
class RemoteSpec:
    """An endpoint outside every compute host, plugged straight into the fabric."""

    name: str
    mac: str
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TopologySpec:
    prefix: str  # every namespace created is named prefix + label
    hosts: tuple[HostSpec, ...] = ()
    remotes: tuple[RemoteSpec, ...] = ()


@dataclass
class Topology(EndpointTraffic):
    """A built topology: which namespace plays which role."""

    spec: TopologySpec
    runner: CommandRunner
    namespaces: list[str] = field(default_factory=list)
    host_of_vm: dict[str, str] = field(default_factory=dict)  # vm label -> host label

    @property
    def fabric(self) -> str:
        return self.spec.prefix + "fabric"

    def ns(self, label: str) -> str:
        """The namespace of a host, VM or remote by its label."""
        return self.spec.prefix + label

    def vm(self, label: str) -> VmSpec:
        for host in self.spec.hosts:
            for vm in host.vms:
                if vm.name == label:
                    return vm
        raise KeyError(label)

    def host_ns_of(self, vm_label: str) -> str:
        return self.ns(self.host_of_vm[vm_label])

    def run_in(
        self,
        label: str,
        argv: Sequence[str],
        *,
        input: str | None = None,
        check: bool = True,
        timeout: float = 30,
    ) -> CommandResult:
        return self.runner.run(
            argv, input=input, netns=self.ns(label), check=check, timeout=timeout
        )

    def endpoints(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(label, mac, addresses) of every VM and remote."""
        result = [(vm.name, vm.mac, vm.addresses) for host in self.spec.hosts for vm in host.vms]
        result += [(remote.name, remote.mac, remote.addresses) for remote in self.spec.remotes]
        return result

    def teardown(self) -> None:
        remove_namespaces(self.spec.prefix, self.runner)


def _check_ifname(name: str, what: str) -> None:
    if len(name.encode()) >= IFNAMSIZ:
        raise ValueError(
            f"{what} device name {name!r} must be shorter than IFNAMSIZ ({IFNAMSIZ - 1} bytes)"
        )


def _add_namespace(topology: Topology, name: str, sysctls: Iterable[str]) -> None:
    runner = topology.runner
    runner.run(["ip", "netns", "add", name])
    topology.namespaces.append(name)
    runner.run(["ip", "link", "set", "lo", "up"], netns=name)
    settings = list(sysctls)
    if settings:
        runner.run(["sysctl", "-q", "-w", *settings], netns=name)


# Quiet endpoints: no router solicitations and no duplicate address detection, so the only IPv6
# packets on the wire are the ones a test sends (plus a couple of MLD reports right after start).
_ENDPOINT_SYSCTLS = (
    "net.ipv6.conf.all.router_solicitations=0",
    "net.ipv6.conf.default.router_solicitations=0",
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
    "net.ipv6.conf.all.accept_ra=0",
    "net.ipv6.conf.default.accept_ra=0",
)
# The host's own stack stays off IPv6 (bridging still carries it); bridged frames go through
# iptables/ip6tables, which is the whole point of the host namespace.
_HOST_SYSCTLS = (
    "net.bridge.bridge-nf-call-iptables=1",
    "net.bridge.bridge-nf-call-ip6tables=1",
    "net.ipv6.conf.all.disable_ipv6=1",
    "net.ipv6.conf.default.disable_ipv6=1",
)
_FABRIC_SYSCTLS = (
    "net.bridge.bridge-nf-call-iptables=0",
    "net.bridge.bridge-nf-call-ip6tables=0",
    "net.ipv6.conf.all.disable_ipv6=1",
    "net.ipv6.conf.default.disable_ipv6=1",
)


def _bridge(runner: CommandRunner, netns: str, name: str) -> None:
    _check_ifname(name, "bridge")
    runner.run(
        [
            "ip", "link", "add", name, "type", "bridge",
            "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0",
        ],
        netns=netns,
    )  # fmt: skip
    runner.run(["ip", "link", "set", name, "up"], netns=netns)


def _configure_endpoint(
    runner: CommandRunner, netns: str, mac: str, addresses: Sequence[str]
) -> None:
    commands = [f"link set eth0 address {mac}"]
    for address in addresses:
        interface = ipaddress.ip_interface(address)
        if interface.version == 6:
            commands.append(f"addr add {interface.with_prefixlen} dev eth0 nodad")
        else:
            commands.append(f"addr add {interface.with_prefixlen} dev eth0")
    commands.append("link set eth0 up")
    commands.append("route add default dev eth0")
    commands.append("route add ::/0 dev eth0")
    runner.run(["ip", "-batch", "-"], input="\n".join(commands) + "\n", netns=netns)


def _attach_vm(topology: Topology, host: HostSpec, vm: VmSpec) -> None:
    runner = topology.runner
    host_ns = topology.ns(host.name)
    vm_ns = topology.ns(vm.name)
    tap = vm.tap
    _check_ifname(tap, "tap")
    _add_namespace(topology, vm_ns, _ENDPOINT_SYSCTLS)
    topology.host_of_vm[vm.name] = host.name
    runner.run(
        ["ip", "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", vm_ns],
        netns=host_ns,
    )
    if host.shape == SHARED_BRIDGE:
        runner.run(["ip", "link", "set", tap, "master", HOST_BRIDGE, "up"], netns=host_ns)
    else:
        qbr = _port_device("qbr", vm.port_id)
        qvb = _port_device("qvb", vm.port_id)
        qvo = _port_device("qvo", vm.port_id)
        _bridge(runner, host_ns, qbr)
        runner.run(
            ["ip", "link", "add", qvb, "type", "veth", "peer", "name", qvo,
             "netns", topology.fabric],
            netns=host_ns,
        )  # fmt: skip
        runner.run(
            ["ip", "-batch", "-"],
            input=f"link set {tap} master {qbr} up\nlink set {qvb} master {qbr} up\n",
            netns=host_ns,
        )
        runner.run(["ip", "link", "set", qvo, "master", FABRIC_BRIDGE, "up"], netns=topology.fabric)
    _configure_endpoint(runner, vm_ns, vm.mac, vm.addresses)


def _uplink_fabric_end(index: int, host_label: str) -> str:
    return f"up{index}-{host_label}"[: IFNAMSIZ - 1]


def _remote_fabric_end(index: int, remote_label: str) -> str:
    return f"rm{index}-{remote_label}"[: IFNAMSIZ - 1]


def _add_host(topology: Topology, host: HostSpec, index: int) -> None:
    runner = topology.runner
    host_ns = topology.ns(host.name)
    _add_namespace(topology, host_ns, _HOST_SYSCTLS)
    if host.shape == SHARED_BRIDGE:
        _bridge(runner, host_ns, HOST_BRIDGE)
        fabric_end = _uplink_fabric_end(index, host.name)
        runner.run(
            ["ip", "link", "add", HOST_UPLINK, "type", "veth", "peer", "name", fabric_end,
             "netns", topology.fabric],
            netns=host_ns,
        )  # fmt: skip
        runner.run(["ip", "link", "set", HOST_UPLINK, "master", HOST_BRIDGE, "up"], netns=host_ns)
        runner.run(
            ["ip", "link", "set", fabric_end, "master", FABRIC_BRIDGE, "up"],
            netns=topology.fabric,
        )
    for vm in host.vms:
        _attach_vm(topology, host, vm)


def _add_remote(topology: Topology, remote: RemoteSpec, index: int) -> None:
    remote_ns = topology.ns(remote.name)
    _add_namespace(topology, remote_ns, _ENDPOINT_SYSCTLS)
    fabric_end = _remote_fabric_end(index, remote.name)
    topology.runner.run(
        ["ip", "link", "add", fabric_end, "type", "veth", "peer", "name", "eth0",
         "netns", remote_ns],
        netns=topology.fabric,
    )  # fmt: skip
    topology.runner.run(
        ["ip", "link", "set", fabric_end, "master", FABRIC_BRIDGE, "up"], netns=topology.fabric
    )
    _configure_endpoint(topology.runner, remote_ns, remote.mac, remote.addresses)


def build(spec: TopologySpec, runner: CommandRunner, *, static_neighbours: bool = True) -> Topology:
    """Create every namespace and link of `spec`; on any failure remove what was made.

    With `static_neighbours`, every endpoint learns every other endpoint's MAC up front, so probes
    are not preceded by ARP / neighbour discovery that would also move counters.
    """
    if not spec.prefix:
        raise ValueError("a topology needs a namespace prefix")
    labels = [h.name for h in spec.hosts] + [v.name for h in spec.hosts for v in h.vms]
    labels += [r.name for r in spec.remotes]
    if len(set(labels)) != len(labels) or "fabric" in labels:
        raise ValueError(f"host, VM and remote labels must be unique and not 'fabric': {labels}")
    topology = Topology(spec, runner)
    try:
        _add_namespace(topology, topology.fabric, _FABRIC_SYSCTLS)
        _bridge(runner, topology.fabric, FABRIC_BRIDGE)
        for index, host in enumerate(spec.hosts):
            _add_host(topology, host, index)
        for index, remote in enumerate(spec.remotes):
            _add_remote(topology, remote, index)
        if static_neighbours:
            populate_neighbours(topology)
            populate_fdb(topology)
        wait_until_up(topology)
    except BaseException:
        topology.teardown()
        raise
    return topology


def _links_not_ready(runner: CommandRunner, netns: str) -> list[str]:
    listing = runner.run(["ip", "-o", "link", "show"], netns=netns).stdout
    waiting = []
    for line in listing.splitlines():
        name = line.split(":", 2)[1].strip().split("@")[0]
        if name != "lo" and ("LOWER_UP" not in line or "state DOWN" in line):
            waiting.append(name)
    bridge_ports = runner.run(["bridge", "-o", "link", "show"], netns=netns).stdout
    for line in bridge_ports.splitlines():
        if "state forwarding" not in line:
            waiting.append(line.split(":", 2)[1].strip().split("@")[0])
    return waiting


def wait_until_up(topology: Topology, timeout: float = 10.0) -> None:
    """Veths and bridge ports take a few milliseconds to carry traffic after `up`."""
    deadline = time.monotonic() + timeout
    pending = list(topology.namespaces)
    while pending:
        pending = [ns for ns in pending if _links_not_ready(topology.runner, ns)]
        if not pending:
            return
        if time.monotonic() > deadline:
            detail = {ns: _links_not_ready(topology.runner, ns) for ns in pending}
            raise TimeoutError(f"links not up after {timeout} s: {detail}")
        time.sleep(0.01)


def populate_fdb(topology: Topology) -> None:
    """Pin every endpoint's MAC to its bridge port in every bridge.

    A bridge floods frames for MACs it has not learnt to all its ports, and with
    bridge-nf-call-iptables every flooded copy runs through FORWARD for its output port: other
    ports' chains would count packets that were never meant for them.
    """
    spec = topology.spec
    fabric: list[str] = []
    all_macs = [mac for _label, mac, _addresses in topology.endpoints()]
    for index, host in enumerate(spec.hosts):
        host_commands: list[str] = []
        local = {vm.mac for vm in host.vms}
        if host.shape == SHARED_BRIDGE:
            uplink = _uplink_fabric_end(index, host.name)
            for vm in host.vms:
                host_commands.append(f"fdb replace {vm.mac} dev {vm.tap} master static")
                fabric.append(f"fdb replace {vm.mac} dev {uplink} master static")
            for mac in all_macs:
                if mac not in local:
                    host_commands.append(f"fdb replace {mac} dev {HOST_UPLINK} master static")
        else:
            for vm in host.vms:
                qvb = _port_device("qvb", vm.port_id)
                host_commands.append(f"fdb replace {vm.mac} dev {vm.tap} master static")
                for mac in all_macs:
                    if mac != vm.mac:
                        host_commands.append(f"fdb replace {mac} dev {qvb} master static")
                qvo = _port_device("qvo", vm.port_id)
                fabric.append(f"fdb replace {vm.mac} dev {qvo} master static")
        if host_commands:
            topology.runner.run(
                ["bridge", "-batch", "-"],
                input="\n".join(host_commands) + "\n",
                netns=topology.ns(host.name),
            )
    for index, remote in enumerate(spec.remotes):
        fabric.append(
            f"fdb replace {remote.mac} dev {_remote_fabric_end(index, remote.name)} master static"
        )
    if fabric:
        topology.runner.run(
            ["bridge", "-batch", "-"], input="\n".join(fabric) + "\n", netns=topology.fabric
        )


def populate_neighbours(topology: Topology) -> None:
    endpoints = topology.endpoints()
    for label, _mac, _addresses in endpoints:
        commands = []
        for other_label, other_mac, other_addresses in endpoints:
            if other_label == label:
                continue
            for address in other_addresses:
                ip = ipaddress.ip_interface(address).ip
                commands.append(f"neigh replace {ip} lladdr {other_mac} dev eth0 nud permanent")
        if commands:
            topology.runner.run(
                ["ip", "-batch", "-"], input="\n".join(commands) + "\n", netns=topology.ns(label)
            )


def add_vm(topology: Topology, host_label: str, vm: VmSpec) -> None:
    """Plug one more VM into an already built host; every endpoint learns its addresses."""
    hosts = list(topology.spec.hosts)
    for index, host in enumerate(hosts):
        if host.name == host_label:
            _attach_vm(topology, host, vm)
            hosts[index] = replace(host, vms=(*host.vms, vm))
            topology.spec = replace(topology.spec, hosts=tuple(hosts))
            populate_neighbours(topology)
            populate_fdb(topology)
            wait_until_up(topology)
            return
    raise KeyError(host_label)


def remove_vm(topology: Topology, vm_label: str) -> None:
    """Unplug a VM: its namespace goes, and with it the veth; a per-port bridge is removed too."""
    vm = topology.vm(vm_label)
    host_ns = topology.host_ns_of(vm_label)
    name = topology.ns(vm_label)
    remove_namespace(name, topology.runner)
    if topology.spec.hosts and any(h.shape == BRIDGE_PER_PORT for h in topology.spec.hosts):
        for device in (_port_device("qbr", vm.port_id), _port_device("qvb", vm.port_id)):
            topology.runner.run(["ip", "link", "del", device], netns=host_ns, check=False)
    if name in topology.namespaces:
        topology.namespaces.remove(name)
    topology.host_of_vm.pop(vm_label, None)
    topology.spec = replace(
        topology.spec,
        hosts=tuple(
            replace(host, vms=tuple(v for v in host.vms if v.name != vm_label))
            for host in topology.spec.hosts
        ),
    )


def bridge_of(port_id: str, shape: Shape) -> str:
    """The bridge a port's tap is plugged into (the raw table zones inbound traffic by it)."""
    return HOST_BRIDGE if shape == SHARED_BRIDGE else _port_device("qbr", port_id)


def host_spec_for_ports(
    host_label: str,
    ports: Iterable[tuple[str, str, str, Sequence[str]]],
    shape: Shape = SHARED_BRIDGE,
) -> HostSpec:
    """A host with one VM per (label, port id, MAC, addresses) port.

    Addresses without a prefix length get a host prefix (/32, /128): with on-link default routes
    every address is reachable anyway, and no subnet route hides a forged-address test.
    """
    vms = []
    for label, port_id, mac, addresses in ports:
        with_prefix = tuple(
            address if "/" in address else str(ipaddress.ip_interface(address))
            for address in addresses
        )
        vms.append(VmSpec(label, port_id, mac, with_prefix))
    return HostSpec(host_label, tuple(vms), shape)
