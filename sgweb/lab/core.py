"""Lab hosts on one machine: compute hosts as namespaces, VMs as namespaces, real agents.

`bring_up` registers a lab project, two networks (v4 + v6 subnets each), a security group and
one port per VM through the action functions (so audit and dispatch see them like any change),
and (issue 16) a network-node host with a router between the two networks: its own agent (the
same worker) plumbs the router's namespace, its qr- interfaces on the fabric bridge, and every
VM routes to the other network through its subnet's gateway on that router,
builds the namespaces with `sgweb.kernel.topology` (Neutron's qbr-per-port shape, a fabric
namespace joining the hosts; the first host also has VMs on the second network, so its conntrack
zones must keep two networks apart), and starts one agent per host (`python -m worker`, managing
that host's namespace) plus a control worker, as background processes with pid files under the
lab directory. `tear_down` stops them and removes everything. Only documentation addresses are
used.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import get_user_model

from sgweb.fwaas import actions as fw_actions
from sgweb.fwaas.models import FirewallGroup
from sgweb.hostsync import processes
from sgweb.hostsync.network_nodes import publish_nodes, stored_router_revision
from sgweb.hostsync.publish import publish_hosts
from sgweb.hostsync.routers_publish import applied_report
from sgweb.hostsync.status import desired_revisions, host_liveness
from sgweb.kernel import topology as topo
from sgweb.kernel.routerns import route_via_gateway
from sgweb.kernel.runner import default_runner
from sgweb.networks import actions as net_actions
from sgweb.networks.models import Host, Network, Port, Subnet
from sgweb.routers import actions as router_actions
from sgweb.routers.models import Router
from sgweb.security import actions as sec_actions
from sgweb.security.models import SecurityGroup
from sgweb.tenancy import actions as ten_actions
from sgweb.tenancy.models import Project

LAB_PREFIX = "sgweb-lab-"
PROJECT_NAME = "lab"
NETWORK_NAME = "lab-net"
GROUP_NAME = "lab-vms"
LAB_USER = "sgweb-lab"
SUBNET_V4 = "198.51.100.0/24"
SUBNET_V6 = "2001:db8:100::/64"
NETWORK2_NAME = "lab-net2"  # the second network, with VMs on the first host only
SUBNET2_V4 = "203.0.113.0/24"
SUBNET2_V6 = "2001:db8:203::/64"
ROUTER_NAME = "lab-router"  # between lab-net and lab-net2, on the lab's network node
NETWORK_NODE_LABEL = "network1"
_TOOLS = ("ip", "iptables-restore", "ip6tables-restore", "ipset", "conntrack", "setsid")
_ALLOWED = [
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "100.64.0.0/10", "2001:db8::/32")
]


class LabError(RuntimeError):
    pass


def lab_dir() -> Path:
    return Path(settings.SGWEB_LAB_DIR)


@dataclass
class LabVm:
    name: str  # also the port's name and the VM namespace's label
    host: str  # the compute host's name (= its namespace)
    port_id: str
    device: str
    mac: str
    addresses: list[str]  # with prefix length
    netns: str
    network: str = NETWORK_NAME


@dataclass
class LabState:
    prefix: str
    hosts: list[str]
    vms: list[LabVm]
    group_id: str
    project_id: str
    network_id: str
    pids: dict[str, int] = field(default_factory=dict)  # process label -> pid
    env: dict[str, str] = field(default_factory=dict)
    network_nodes: list[str] = field(default_factory=list)  # hosts running the lab's router
    router_id: str = ""

    def vm(self, name: str) -> LabVm:
        for vm in self.vms:
            if name in (vm.name, vm.port_id, vm.device, vm.netns):
                return vm
        raise LabError(f"no lab VM or port named {name!r} (have: {[v.name for v in self.vms]})")

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "lab.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, directory: Path) -> LabState | None:
        path = directory / "lab.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        data["vms"] = [LabVm(**vm) for vm in data["vms"]]
        return cls(**data)


def _lab_actor() -> Any:
    user, created = get_user_model().objects.get_or_create(
        username=LAB_USER, defaults={"is_superuser": True, "is_staff": True}
    )
    if created:
        user.set_unusable_password()
        user.save()
    return user


def _ensure_network(actor: Any, project: Any, name: str, v4: str, v6: str, label: str) -> Any:
    network = Network.objects.filter(project=project, name=name).first()
    if network is None:
        network = net_actions.create_network(actor, project, name=name)
        net_actions.create_subnet(actor, network, cidr=v4, name=f"{label}-v4", ip_version=4)
        net_actions.create_subnet(actor, network, cidr=v6, name=f"{label}-v6", ip_version=6)
    return network


def _ensure_objects(actor: Any) -> tuple[Any, Any, Any]:
    project = Project.objects.filter(name=PROJECT_NAME).first() or ten_actions.create_project(
        actor, name=PROJECT_NAME, description="Lab hosts on this machine"
    )
    network = _ensure_network(actor, project, NETWORK_NAME, SUBNET_V4, SUBNET_V6, "lab")
    group = SecurityGroup.objects.filter(project=project, name=GROUP_NAME).first()
    if group is None:
        group = sec_actions.create_security_group(
            actor,
            project,
            name=GROUP_NAME,
            description="Lab VMs: all egress, no ingress until you add a rule",
        )
    return project, network, group


def _agent_env(prefix: str) -> dict[str, str]:
    """What every lab process inherits: the same broker, Redis keys and database as we use."""
    env = {
        "PYTHONPATH": str(settings.BASE_DIR),
        "SGWEB_BROKER_URL": settings.CELERY_BROKER_URL,
        "SGWEB_REDIS_URL": settings.SGWEB_SYNC_REDIS_URL,
        **processes.worker_env(),
        # Issue 16: a lab host with router state is a network node; its routers' interfaces
        # join the lab's one L2 segment, the fabric bridge, where both lab networks live (the
        # namespaces' prefix is per host, see start_agent).
        "SGWEB_ROUTER_BRIDGE": topo.FABRIC_BRIDGE,
        "SGWEB_ROUTER_BRIDGE_NETNS": prefix + "fabric",
        **settings.SGWEB_LAB_AGENT_ENV,
    }
    return env


def _build_router(actor: Any, project: Any, node: Host, networks: list[Any]) -> Any:
    """The lab's router on `node` with an interface on every subnet (v4 and v6) of `networks`."""
    for old in Router.objects.filter(project=project, name=ROUTER_NAME):
        _delete_router(actor, old)
    router = router_actions.create_router(actor, project, name=ROUTER_NAME, host=node)
    for subnet in Subnet.objects.filter(network__in=networks).order_by("cidr"):
        router_actions.add_interface(actor, router, subnet)
    return router


def _delete_router(actor: Any, router: Any) -> None:
    """Its interfaces leave their firewall groups first (Neutron refuses otherwise)."""
    ports = [interface.port for interface in router.interfaces.select_related("port")]
    for group in FirewallGroup.objects.filter(port_links__port__in=ports).distinct():
        keep = [link.port for link in group.port_links.exclude(port__in=ports)]
        fw_actions.update_group(actor, group, ports=keep)
    for port in ports:
        router_actions.remove_interface(actor, router, port=port)
    router_actions.delete_router(actor, router)


def _route_vms_via_gateways(state: LabState) -> None:
    """Each VM's default routes through its subnets' gateways (the router's interfaces), so
    traffic to the other network crosses the router and its firewall groups."""
    gateways: dict[str, list[str]] = {}
    for subnet in Subnet.objects.filter(network__project_id=state.project_id):
        if subnet.gateway_ip:
            gateways.setdefault(subnet.network.name, []).append(subnet.gateway_ip)
    runner = default_runner()
    for vm in state.vms:
        route_via_gateway(runner, vm.netns, sorted(gateways.get(vm.network, [])))


def _spawn(label: str, argv: list[str], env: dict[str, str], directory: Path) -> int:
    return processes.spawn_detached(label, argv, env, directory)


def start_agent(state: LabState, host: str, directory: Path | None = None) -> int:
    directory = directory or lab_dir()
    # A router's namespace is <host namespace>-qrouter-<id>: under the lab prefix (tear_down
    # removes it with the rest) and apart from other lab network nodes' routers, whose
    # namespaces an agent's start-up clean-up must not take for its own strays.
    env = {**state.env, "SGWEB_HOST": host, "SGWEB_NETNS": host,
           "SGWEB_ROUTER_NETNS_PREFIX": f"{host}-"}  # fmt: skip
    pid = _spawn(f"agent-{host}", [sys.executable, "-m", "worker"], env, directory)
    state.pids[f"agent-{host}"] = pid
    return pid


def start_control_worker(state: LabState, directory: Path | None = None) -> int:
    """The lab's own control worker, unless `manage.py up` already runs one."""
    directory = directory or lab_dir()
    shared = processes.running(processes.run_dir() / "control.pid")
    if shared is not None and Path(settings.SGWEB_LAB_DIR) == settings.BASE_DIR / "var" / "lab":
        return shared
    argv = processes.control_worker_argv(f"control-{state.prefix.rstrip('-')}")
    pid = _spawn("control", argv, state.env, directory)
    state.pids["control"] = pid
    return pid


def stop_process(pid: int, timeout: float = 5.0) -> None:
    processes.stop(pid, timeout)


def bring_up(
    hosts: int = 2,
    vms: int = 2,
    *,
    prefix: str = LAB_PREFIX,
    control_worker: bool = True,
    wait_s: float = 60.0,
    net2_vms: int = 1,
    router: bool = True,
) -> LabState:
    """Build the lab and wait until every host's agent has applied its state.

    The first host also gets `net2_vms` VMs on the second network (lab-net2); with `router`
    (and a second network) a network node routes between the two networks."""

    if hosts < 1 or vms < 0 or net2_vms < 0 or hosts * vms + net2_vms > 200:
        raise LabError("use 1..N hosts and at most 200 VMs in all")
    if os.geteuid() != 0:
        raise LabError("lab hosts are network namespaces: run this as root")
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        raise LabError(f"missing {', '.join(missing)} (bash .ci/setup installs them)")
    directory = lab_dir()
    if LabState.load(directory) is not None or topo.list_namespaces(prefix):
        tear_down(prefix=prefix)
    directory.mkdir(parents=True, exist_ok=True)
    actor = _lab_actor()
    project, network, group = _ensure_objects(actor)
    network2 = None
    if net2_vms:
        network2 = _ensure_network(
            actor, project, NETWORK2_NAME, SUBNET2_V4, SUBNET2_V6, NETWORK2_NAME
        )

    state = LabState(prefix, [], [], str(group.id), str(project.id), str(network.id))
    state.env = _agent_env(prefix)
    specs = []
    for h in range(1, hosts + 1):
        host_name = f"{prefix}host{h}"
        net_actions.host_for_binding(host_name)

        Host.objects.filter(name=host_name).update(netns=host_name)
        state.hosts.append(host_name)
        plan = [(f"h{h}-vm{v}", network) for v in range(1, vms + 1)]
        if h == 1 and network2 is not None:
            plan += [(f"h{h}-net2-vm{v}", network2) for v in range(1, net2_vms + 1)]
        host_vms = []
        for label, vm_network in plan:
            vm = _create_vm(actor, project, vm_network, group, host_name, label, prefix)
            state.vms.append(vm)
            host_vms.append(topo.VmSpec(label, vm.port_id, vm.mac, tuple(vm.addresses), vm.device))
        specs.append(topo.HostSpec(f"host{h}", tuple(host_vms), topo.BRIDGE_PER_PORT))
    if network2 is not None and router:
        node_name = f"{prefix}{NETWORK_NODE_LABEL}"
        node = net_actions.host_for_binding(node_name)
        Host.objects.filter(name=node_name).update(netns=node_name, network_node=True)
        node.refresh_from_db()
        state.network_nodes.append(node_name)
        specs.append(topo.HostSpec(NETWORK_NODE_LABEL, (), topo.BRIDGE_PER_PORT))
        state.router_id = str(_build_router(actor, project, node, [network, network2]).id)
    state.save(directory)
    built = topo.build(topo.TopologySpec(prefix, tuple(specs)), default_runner())
    topo.wait_until_up(built)
    if state.router_id:
        _route_vms_via_gateways(state)
    publish_hosts(state.hosts + state.network_nodes, "lab up")
    publish_nodes(state.network_nodes, "lab up")
    if control_worker:
        start_control_worker(state, directory)
    for host_name in state.hosts + state.network_nodes:
        start_agent(state, host_name, directory)
    state.save(directory)
    wait_in_sync(state, wait_s)
    return state


def _create_vm(
    actor: Any, project: Any, network: Any, group: Any, host_name: str, label: str, prefix: str
) -> LabVm:
    """The VM's port (through the actions, so audit and dispatch see it) and its addresses."""
    port = net_actions.create_port(
        actor,
        project,
        network,
        name=f"{prefix}{label}",
        security_groups=[str(group.id)],
        host=host_name,
    )
    port = Port.objects.prefetch_related("fixed_ips__subnet").get(pk=port.pk)
    addresses = []
    for fixed in port.fixed_ips.all():
        length = ipaddress.ip_network(fixed.subnet.cidr).prefixlen
        if not any(ipaddress.ip_address(fixed.ip_address) in n for n in _ALLOWED):
            raise LabError(f"lab address {fixed.ip_address} outside documentation ranges")
        addresses.append(f"{fixed.ip_address}/{length}")
    return LabVm(
        name=label,
        host=host_name,
        port_id=str(port.id),
        device=port.device,
        mac=port.mac_address,
        addresses=addresses,
        netns=prefix + label,
        network=network.name,
    )


def wait_in_sync(state: LabState, timeout_s: float = 30.0) -> dict[str, Any]:
    """Until every lab agent reports (heartbeat) the newest stored revision as applied, and
    every network node the newest router state."""

    deadline = time.monotonic() + timeout_s
    names = state.hosts + state.network_nodes
    while True:
        live = host_liveness(names)
        wanted = desired_revisions(names)
        lagging: dict[str, Any] = {
            name: (live[name].applied_revision, wanted[name])
            for name in names
            if not live[name].alive or (live[name].applied_revision or 0) < (wanted[name] or 0)
        }
        for name in state.network_nodes:
            report = applied_report(name) or {}
            stored = stored_router_revision(name)
            if not report.get("ok") or int(report.get("revision") or 0) < stored:
                lagging[f"{name} routers"] = (report.get("revision"), stored, report.get("error"))
        if not lagging:
            return {name: wanted[name] for name in names}
        if time.monotonic() > deadline:
            raise LabError(f"hosts not in sync after {timeout_s} s: {lagging}")
        time.sleep(0.1)


def tear_down(*, prefix: str | None = None) -> list[str]:
    """Stop the lab's processes, remove its namespaces and its ports and hosts from the DB."""
    directory = lab_dir()
    state = LabState.load(directory)
    prefix = prefix or (state.prefix if state else LAB_PREFIX)
    for pid_file in sorted(directory.glob("*.pid")) if directory.exists() else []:
        with contextlib.suppress(ValueError):
            stop_process(int(pid_file.read_text().strip()))
        pid_file.unlink(missing_ok=True)
    removed = topo.remove_namespaces(prefix, default_runner())
    _forget_in_database(prefix)
    (directory / "lab.json").unlink(missing_ok=True)
    return removed


def _forget_in_database(prefix: str) -> None:
    actor = _lab_actor()
    for router in Router.objects.filter(host__name__startswith=prefix):
        _delete_router(actor, router)
    for port in Port.objects.filter(host__name__startswith=prefix):
        net_actions.delete_port(actor, port)
    for host in Host.objects.filter(name__startswith=prefix):
        net_actions.delete_host(actor, host)


def address_of(vm: LabVm, family: int = 4) -> str:
    for address in vm.addresses:
        interface = ipaddress.ip_interface(address)
        if interface.version == family:
            return str(interface.ip)
    raise LabError(f"{vm.name} has no IPv{family} address")


_PROBE = str(Path(topo.__file__).with_name("probe.py"))


def probe(
    state: LabState,
    src: str,
    dst: str,
    *,
    protocol_name: str = "icmp",
    port: int | None = None,
    family: int = 4,
    timeout: float = 1.0,
) -> dict[str, Any]:
    """One packet from VM `src` to VM `dst` (or an address); {"ok": bool, ...}."""
    source = state.vm(src)
    try:
        target = address_of(state.vm(dst), family)
    except LabError:
        target = str(ipaddress.ip_address(dst))
    argv = [sys.executable, "-I", _PROBE, protocol_name, target, "--timeout", str(timeout)]
    if protocol_name != "icmp":
        argv += ["--port", str(port)]
    if protocol_name == "udp":
        argv.append("--expect-reply")  # the lab's UDP listener echoes: a reply proves the path
    result = default_runner().run(argv, netns=source.netns, check=False, timeout=timeout + 10)
    try:
        return cast(dict[str, Any], json.loads(result.stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError):
        return {"ok": False, "error": result.stderr.strip()}


def listen(state: LabState, vm: str, protocol_name: str, port: int) -> Any:
    """Start a listener (TCP accept / UDP echo) in a VM; returns the process handle."""
    target = state.vm(vm)
    argv = [sys.executable, "-I", _PROBE, "listen", protocol_name, "--port", str(port)]
    if protocol_name == "udp":
        argv.append("--echo")
    return default_runner().spawn(argv, netns=target.netns)
