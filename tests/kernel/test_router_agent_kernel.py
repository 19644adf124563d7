"""The network node's agent end to end on a real kernel (issue 16): a router state published to
real Redis is applied by the agent, which plumbs the router namespace itself (qr- veths on each
network's bridge in the network node's namespace, gateway addresses, forwarding on); real pings
between two VM namespaces on two networks prove the deny, the allow, and the counters per rule.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import redis

from sgweb.firewall.fwaas.model import (
    ALLOW,
    DENY,
    FirewallGroup,
    FirewallPolicy,
    FirewallRule,
    NetworkNodeState,
    RouterInterface,
    RouterState,
)
from sgweb.hostsync import routers_publish
from sgweb.hostsync.channel import SyncChannel
from sgweb.kernel.netns import list_namespaces
from sgweb.kernel.routerns import (
    NO_ICMP_RATELIMIT,
    plumb_router,
    route_via_gateway,
    router_netns,
    router_ports,
    unplumb_router,
)
from sgweb.kernel.runner import SubprocessRunner, default_runner
from sgweb.kernel.topology import tap_name
from sgweb.wire import routers as wire
from sgweb.wire import sync as protocol
from tests.firewall.fwaas.example import APP, ROUTER, WEB
from tests.kernel.test_fwaas_kernel import RouterLab
from tests.lab.stack import wait_for
from worker.router_io import RedisRouterStore
from worker.routers import RouterAgent

pytestmark = [pytest.mark.kernel, pytest.mark.redis]

REDIS_URL = "redis://127.0.0.1:6379/11"
HOST = "network1"
# Named as Neutron's Linux-bridge agent names them (brq + network id[:11]): the agent process
# below finds them by that name.
BRIDGES = {"net-web-id": "brqnet-web-id", "net-app-id": "brqnet-app-id"}
WEB_VM, APP_VM = "192.0.2.5", "198.51.100.10"
V4_ROUTER = replace(ROUTER, interfaces=(WEB, APP))


def _bridge_for(interface: RouterInterface) -> str:
    return BRIDGES[interface.network_id]


@dataclass
class NetworkNode:
    runner: SubprocessRunner
    host: str
    web: str
    app: str
    prefix: str
    channel: SyncChannel
    agent: RouterAgent
    reports: list[dict]

    @property
    def lab(self) -> RouterLab:
        return RouterLab(self.runner, router_netns(ROUTER.id, self.prefix), self.web, self.app)

    def publish(self, *groups: FirewallGroup) -> int:
        state = NetworkNodeState(HOST, (RouterState(V4_ROUTER, tuple(groups)),))
        return routers_publish.publish_network_node(HOST, state, via=self.channel).revision


def _vm(runner: SubprocessRunner, host: str, netns: str, port_id: str, bridge: str,
        address: str, gateway: str) -> None:  # fmt: skip
    tap = tap_name(port_id)
    runner.run(["ip", "netns", "add", netns])
    runner.run(["ip", "link", "set", "lo", "up"], netns=netns)
    runner.run(
        ["ip", "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", netns],
        netns=host,
    )
    runner.run(["ip", "link", "set", tap, "master", bridge, "up"], netns=host)
    runner.run(["ip", "addr", "add", address, "dev", "eth0"], netns=netns)
    runner.run(["ip", "link", "set", "eth0", "up"], netns=netns)
    route_via_gateway(runner, netns, [gateway])


@pytest.fixture
def node(kernel_runner: SubprocessRunner, netns_prefix: str) -> Iterator[NetworkNode]:
    runner = kernel_runner
    host, web, app = (netns_prefix + label for label in ("network1", "web", "app"))
    runner.run(["ip", "netns", "add", host])
    runner.run(["ip", "link", "set", "lo", "up"], netns=host)
    for bridge in BRIDGES.values():
        runner.run(["ip", "link", "add", bridge, "type", "bridge", "forward_delay", "0"],
                   netns=host)  # fmt: skip
        runner.run(["ip", "link", "set", bridge, "up"], netns=host)
    _vm(runner, host, web, "0a100000-0000-4000-8000-0000000000a1", BRIDGES["net-web-id"],
        f"{WEB_VM}/24", WEB.ip_address)  # fmt: skip
    _vm(runner, host, app, "0a200000-0000-4000-8000-0000000000a2", BRIDGES["net-app-id"],
        f"{APP_VM}/24", APP.ip_address)  # fmt: skip
    prefix = f"sgwt-{secrets.token_hex(4)}"
    channel = SyncChannel(REDIS_URL, REDIS_URL, prefix=prefix, control_queue=f"control-{prefix}")

    def plumb(state: RouterState, netns: str) -> None:
        ports = router_ports(state.router, _bridge_for)
        plumb_router(runner, host, netns, ports, extra_sysctls=NO_ICMP_RATELIMIT)

    reports: list[dict] = []
    store = RedisRouterStore(REDIS_URL, HOST, prefix)
    agent = RouterAgent(
        HOST, store, runner, reports.append, netns_prefix=netns_prefix, plumb=plumb,
        unplumb=lambda netns: unplumb_router(runner, netns),
    )  # fmt: skip
    try:
        yield NetworkNode(runner, host, web, app, netns_prefix, channel, agent, reports)
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()
        store.client.close()
        channel.close()
        # netns_prefix removes the namespaces, the router's too, also when the test failed


def _ping_eventually(node: NetworkNode, ok: bool, source: str, destination: str) -> bool:
    """Neighbour discovery through a fresh router can lose the first probe or two."""
    return any(node.lab.ping(source, destination).ok == ok for _ in range(10))


PING_POLICY = "p-ping"


def _group(action: str, *, rule_id: str = "r-ping", name: str = "ping") -> FirewallGroup:
    rule = FirewallRule(id=rule_id, name=name, protocol="icmp", action=action)
    everything_else = FirewallRule(id="r-rest", name="rest", action=ALLOW)
    policy = FirewallPolicy(id=PING_POLICY, name="web-egress", rules=(rule, everything_else))
    return FirewallGroup(id="fg-web", name="web-fw", egress_policy=policy, ports=(WEB.port_id,))


def test_the_agent_plumbs_the_router_and_a_ping_crosses_it_without_a_firewall(node) -> None:
    revision = node.publish()
    outcome = node.agent.sync(revision, "test")
    assert outcome.action == "applied", outcome.report
    assert node.reports[-1]["ok"] and node.reports[-1]["mode"] == "full"
    assert _ping_eventually(node, True, node.web, APP_VM)
    assert _ping_eventually(node, True, node.app, WEB_VM)


def test_a_published_deny_stops_a_ping_across_the_router_and_an_allow_lets_it_through(
    node,
) -> None:
    node.agent.sync(node.publish(), "plumb")
    assert _ping_eventually(node, True, node.web, APP_VM)

    denied = node.publish(_group(DENY, rule_id="r-deny-ping", name="deny-ping"))
    assert node.agent.sync(denied, "deny").action == "applied"
    assert node.reports[-1]["mode"] == "incremental"
    for _ in range(3):
        assert not node.lab.ping(node.web, APP_VM).ok
    hits = {h.origin.rule_name: h.counter.packets for h in node.agent.rule_hits()[ROUTER.id]}
    assert hits["deny-ping"] >= 3 and hits["rest"] == 0

    allowed = node.publish(_group(ALLOW, rule_id="r-allow-ping", name="allow-ping"))
    assert node.agent.sync(allowed, "allow").action == "applied"
    assert _ping_eventually(node, True, node.web, APP_VM)
    for _ in range(2):
        assert node.lab.ping(node.web, APP_VM).ok
    hits = {h.origin.rule_name: h.counter.packets for h in node.agent.rule_hits()[ROUTER.id]}
    assert hits["allow-ping"] >= 3
    assert node.agent.check_drift() == {}


def test_an_interface_removed_from_the_router_is_unplugged_and_a_removed_router_goes(
    node,
) -> None:
    node.agent.sync(node.publish(), "both interfaces")
    assert _ping_eventually(node, True, node.web, APP_VM)
    netns = router_netns(ROUTER.id, node.prefix)
    one_leg = replace(V4_ROUTER, interfaces=(WEB,))
    state = NetworkNodeState(HOST, (RouterState(one_leg),))
    revision = routers_publish.publish_network_node(HOST, state, via=node.channel).revision
    assert node.agent.sync(revision, "interface removed").action == "applied"
    devices = node.runner.run(["ip", "-o", "link", "show"], netns=netns).stdout
    assert WEB.device in devices and APP.device not in devices
    assert not node.lab.ping(node.web, APP_VM).ok
    empty = routers_publish.publish_network_node(HOST, NetworkNodeState(HOST), via=node.channel)
    assert node.agent.sync(empty.revision, "router deleted").action == "applied"
    assert list_namespaces(netns) == []


def test_a_nudge_for_an_applied_revision_is_a_no_op_and_the_newest_state_wins(node) -> None:
    first = node.publish(_group(DENY))
    second = node.publish(_group(ALLOW))
    assert node.agent.sync(first, "old nudge").revision == second  # reads the newest
    assert node.agent.sync(first, "old nudge").action == "skipped"
    assert node.agent.sync(second, "again").action == "skipped"


def test_drift_in_a_router_namespace_is_found_and_repaired(node) -> None:
    node.agent.sync(node.publish(_group(DENY)), "deny")
    netns = router_netns(ROUTER.id, node.prefix)
    node.runner.run(["iptables", "-F", "neutron-l3-agent-FORWARD"], netns=netns)
    assert _ping_eventually(node, True, node.web, APP_VM)  # the hole is real
    drifted = node.agent.check_drift()
    assert ROUTER.id in drifted
    assert node.agent.check_drift() == {}
    assert _ping_eventually(node, False, node.web, APP_VM)


def test_a_state_the_kernel_refuses_leaves_the_previous_rules_in_force(node, monkeypatch) -> None:
    node.agent.sync(node.publish(_group(DENY)), "deny")
    revision = node.publish(_group(ALLOW))
    from sgweb.kernel import router as router_module

    real = router_module.fwaas_render_delta

    def broken(previous, new):  # type: ignore[no-untyped-def]
        text = real(previous, new)
        return text.replace("COMMIT", "-A no-such-chain -j ACCEPT\nCOMMIT") if text else text

    monkeypatch.setattr(router_module, "fwaas_render_delta", broken)
    outcome = node.agent.sync(revision, "refused")
    assert outcome.action == "failed"
    report = node.reports[-1]
    assert not report["ok"] and report["failed_router"] == ROUTER.id
    assert "no-such-chain" in (report["error_line"] or "")
    assert not node.lab.ping(node.web, APP_VM).ok  # the deny stays


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def agent_process(node: NetworkNode) -> Iterator[None]:
    """`python -m worker` for the network node (real Celery on the real Redis); its polling is
    set to ten minutes, so router revisions reach it through the nudge on its queue."""
    env = {
        "SGWEB_HOST": HOST,
        "SGWEB_NETNS": node.host,
        "SGWEB_ROUTER_NETNS_PREFIX": node.prefix,
        "SGWEB_BROKER_URL": REDIS_URL,
        "SGWEB_KEY_PREFIX": node.channel.prefix,
        "SGWEB_CONTROL_QUEUE": node.channel.control_queue,
        "SGWEB_POLL_INTERVAL_S": "600",
        "SGWEB_DRIFT_INTERVAL_S": "0",
        "SGWEB_ACCOUNTING_INTERVAL_S": "0",
        "SGWEB_OWNER_PID": str(os.getpid()),
        "PYTHONPATH": str(ROOT),
    }
    argv = ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m", "worker"]
    process = default_runner().spawn(argv)
    keys = protocol.host_keys(HOST, node.channel.prefix)
    try:
        wait_for("the agent's heartbeat", lambda: node.channel.redis.exists(keys.heartbeat), 60)
        yield
    finally:
        process.stop(timeout=3)
        node.channel.redis.delete(protocol.host_queue(HOST))


def _applied(node: NetworkNode) -> dict:
    raw = node.channel.redis.get(wire.router_keys(HOST, node.channel.prefix).applied)
    return json.loads(raw) if raw else {}


def test_the_agent_process_applies_a_published_deny_then_allow_on_its_nudges(
    node, agent_process
) -> None:
    denied = node.publish(_group(DENY, rule_id="r-deny-ping", name="deny-ping"))
    wait_for("the deny applied", lambda: _applied(node).get("revision") == denied, 30)
    assert _applied(node)["ok"], _applied(node)
    assert not node.lab.ping(node.web, APP_VM).ok
    allowed = node.publish(_group(ALLOW, rule_id="r-allow-ping", name="allow-ping"))
    wait_for("the allow applied", lambda: _applied(node).get("revision") == allowed, 30)
    assert _ping_eventually(node, True, node.web, APP_VM)
    heartbeat = protocol.host_keys(HOST, node.channel.prefix).heartbeat

    def beat() -> dict:
        return json.loads(node.channel.redis.get(heartbeat) or "{}")

    wait_for("the heartbeat names it", lambda: beat().get("router_revision") == allowed, 10)
    assert beat()["router_digest"] == _applied(node)["digest"]


def test_connections_a_new_deny_would_not_let_start_are_cut_after_the_apply(node) -> None:
    node.agent.sync(node.publish(_group(ALLOW)), "allow")
    assert _ping_eventually(node, True, node.web, APP_VM)
    netns = router_netns(ROUTER.id, node.prefix)

    def icmp_entries() -> list[str]:
        listing = node.runner.run(["conntrack", "-L", "-p", "icmp"], netns=netns, check=False)
        return [line for line in listing.stdout.splitlines() if f"dst={APP_VM}" in line]

    assert icmp_entries()  # the allowed pings' flows are tracked (30 s timeout)
    assert node.agent.sync(node.publish(_group(DENY)), "deny").action == "applied"
    assert node.agent.cuts.wait_idle(10)
    assert icmp_entries() == []
    assert node.agent.cuts.cut_total >= 1


def test_a_restarted_agent_removes_router_namespaces_its_state_no_longer_has(node) -> None:
    stray = router_netns("deleted-while-down", node.prefix)
    node.runner.run(["ip", "netns", "add", stray])
    assert node.agent.full_sync("agent start").action == "missing"  # nothing published yet
    assert list_namespaces(stray) == [stray]
    node.publish()
    assert node.agent.full_sync("agent start").action == "applied"
    assert list_namespaces(stray) == []
    assert node.reports[-1]["removed_routers"] == ["deleted-while-down"]
    assert list_namespaces(router_netns(ROUTER.id, node.prefix))
