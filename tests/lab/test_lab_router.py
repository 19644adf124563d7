"""The lab's router between its two networks, with real agents (issue 16): VMs of lab-net and
lab-net2 reach each other through the network node's router namespace, and a firewall group on
the router's interfaces, made through the API, stops and lets through real pings.

One stack for the module (database, Redis keys, two compute hosts, a network node, agents,
control worker, API server); timings are printed (run with -s), never asserted.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

from sgweb.kernel.netns import list_namespaces
from sgweb.wire import routers as wire
from tests.lab.stack import Stack

pytestmark = [pytest.mark.kernel, pytest.mark.redis]

NET1_VM, NET2_VM = "h2-vm1", "h1-net2-vm1"  # lab-net on host 2, lab-net2 on host 1


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    if os.geteuid() != 0:
        pytest.skip("kernel: needs root")
    lab = Stack(hosts=2, vms=1, net2_vms=1)
    lab.env["SGWEB_ACCOUNTING_INTERVAL_S"] = "2"  # the firewall rules' kept hits, sooner
    try:
        yield lab.start()
    finally:
        lab.close()


@pytest.fixture(scope="module")
def pings_admitted(stack: Stack) -> Iterator[None]:
    """The VMs' security group admits ICMP, so only the router's firewall decides."""
    ids = []
    for ethertype, protocol in (("IPv4", "icmp"), ("IPv6", "ipv6-icmp")):
        body = {"security_group_id": stack.state["group_id"], "direction": "ingress",
                "ethertype": ethertype, "protocol": protocol}  # fmt: skip
        rule = stack.api("POST", "/security-group-rules", {"security_group_rule": body})
        ids.append(rule["security_group_rule"]["id"])
    stack.wait_in_sync()
    yield
    for rule_id in ids:
        stack.api("DELETE", f"/security-group-rules/{rule_id}")


def router_ports(stack: Stack) -> list[str]:
    ports = stack.api("GET", "/ports")["ports"]
    return sorted(p["id"] for p in ports if p["device_id"] == stack.state["router_id"])


def denied_packets(stack: Stack, rule_id: str) -> int:
    """The rule's packets as the network node's agent reads them while a page watches."""
    keys = wire.router_keys(stack.state["network_nodes"][0], stack.key_prefix)

    def counted() -> int:
        stack.redis.set(keys.watched, "1", ex=wire.WATCH_TTL_S)  # what the router page does
        raw = stack.redis.get(keys.hits)
        rules = json.loads(raw)["routers"].get(stack.state["router_id"], {}) if raw else {}
        return int(rules.get(rule_id, [0])[0])

    return int(stack.wait("the deny rule's packets counted", counted, timeout=10))


def kept_packets(stack: Stack, rule_id: str) -> int:
    """The rule's hits the control plane kept from the network node's always-on accounting."""

    def kept() -> int:
        hits = stack.api("GET", f"/fwaas/firewall_rules/{rule_id}/hits?window=1h")
        return int(hits["firewall_rule_hits"]["packets"])

    return int(stack.wait("the deny rule's hits kept", kept, timeout=30))


def pings(stack: Stack, family: int = 4) -> bool:
    return stack.probe(NET1_VM, NET2_VM, family=family) and stack.probe(
        NET2_VM, NET1_VM, family=family
    )


def test_the_lab_has_a_network_node_whose_router_joins_both_networks(stack) -> None:
    node = stack.state["network_nodes"][0]
    assert list_namespaces(f"{node}-qrouter-{stack.state['router_id']}")
    assert len(router_ports(stack)) == 4, "an interface on each network's v4 and v6 subnet"
    assert stack.ip(NET1_VM).startswith("198.51.100.") and stack.ip(NET2_VM).startswith("203.")


def test_vms_of_the_two_networks_ping_each_other_across_the_router(stack, pings_admitted) -> None:
    stack.wait("IPv4 ping across the router", lambda: pings(stack))
    stack.wait("IPv6 ping across the router", lambda: pings(stack, 6))


def test_a_deny_rule_on_the_router_stops_the_ping_and_an_allow_lets_it_through(
    stack, pings_admitted
) -> None:
    stack.wait("ping across the router", lambda: pings(stack))
    project = stack.state["project_id"]
    rule = stack.api(
        "POST",
        "/fwaas/firewall_rules",
        {
            "firewall_rule": {
                "name": "deny-ping",
                "protocol": "icmp",
                "action": "deny",
                "project_id": project,
            }
        },
    )["firewall_rule"]
    policy = stack.api(
        "POST",
        "/fwaas/firewall_policies",
        {
            "firewall_policy": {
                "name": "lab-edge",
                "firewall_rules": [rule["id"]],
                "project_id": project,
            }
        },
    )["firewall_policy"]
    started = time.perf_counter()
    group = stack.api(
        "POST",
        "/fwaas/firewall_groups",
        {"firewall_group": {"name": "lab-fw", "project_id": project,
                            "ingress_firewall_policy_id": policy["id"],
                            "egress_firewall_policy_id": policy["id"],
                            "ports": router_ports(stack)}},
    )["firewall_group"]  # fmt: skip
    try:
        stack.wait("the ping stopped by the router", lambda: not stack.probe(NET1_VM, NET2_VM),
                   timeout=10)  # fmt: skip
        print(f"\ndeny rule: ping stopped {time.perf_counter() - started:.3f} s after the API call")

        def status() -> str:
            return stack.api("GET", f"/fwaas/firewall_groups/{group['id']}")["firewall_group"][
                "status"
            ]

        stack.wait("the group ACTIVE", lambda: status() == "ACTIVE", timeout=15)
        stack.probe(NET1_VM, NET2_VM)  # one more denied packet for the counters
        assert denied_packets(stack, rule["id"]) > 0
        assert kept_packets(stack, rule["id"]) > 0, "the network node's accounting kept them"
        started = time.perf_counter()
        stack.api("PUT", f"/fwaas/firewall_rules/{rule['id']}",
                  {"firewall_rule": {"action": "allow"}})  # fmt: skip
        stack.wait("the ping allowed again", lambda: pings(stack), timeout=10)
        print(f"allow: ping through {time.perf_counter() - started:.3f} s after the API call")
        assert not stack.probe(NET1_VM, NET2_VM, family=6), "IPv6 falls to the default drop"
    finally:
        stack.api("DELETE", f"/fwaas/firewall_groups/{group['id']}")
        stack.api("DELETE", f"/fwaas/firewall_policies/{policy['id']}")
        stack.api("DELETE", f"/fwaas/firewall_rules/{rule['id']}")
    stack.wait("the ping through without a group", lambda: pings(stack, 6), timeout=10)


def test_manage_py_lab_ping_works_across_the_router_and_status_names_it(
    stack, pings_admitted
) -> None:
    stack.wait("ping across the router", lambda: pings(stack))
    out = stack.manage("lab", "ping", NET1_VM, NET2_VM, "--count", "2")
    assert out.count(": ok") == 2, out
    status = stack.manage("lab", "status")
    assert "network node" in status and "lab-router" in status, status


def start_trace(stack: Stack, src: str, dst: str) -> dict:
    """An echo request traced from VM `src` to VM `dst` (`POST /api/traces`), once finished."""
    root = stack.base_url.split("/networking", 1)[0]
    body = {"source": stack.vm(src)["port_id"], "destination": stack.vm(dst)["port_id"],
            "protocol": "icmp"}  # fmt: skip
    trace = _call(stack, "POST", f"{root}/api/traces", body)["trace"]

    def finished() -> dict | None:
        got = _call(stack, "GET", f"{root}/api/traces/{trace['id']}")["trace"]
        return got if got["finished_at"] else None

    return dict(stack.wait("the trace's kernel proof", finished, timeout=60, every=0.5))


def _call(stack: Stack, method: str, url: str, body: dict | None = None) -> dict:
    import urllib.request

    request = urllib.request.Request(
        url, method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"X-Auth-Token": stack.token, "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read().decode())


def test_a_trace_across_the_router_is_proved_on_both_hosts_and_in_the_router_namespace(
    stack, pings_admitted
) -> None:
    """Source and destination on two hosts: three hops, the router's traced by its network node
    in its namespace; a deny rule on the lab-net2 interface is the kernel's own account there."""
    node = stack.state["network_nodes"][0]
    source_host, destination_host = stack.host_of(NET1_VM), stack.host_of(NET2_VM)
    stack.wait("ping across the router", lambda: pings(stack))
    allowed = start_trace(stack, NET1_VM, NET2_VM)["kernel"]
    assert [(hop["host"], hop["kernel"]) for hop in allowed["hops"]] == [
        (source_host, "ACCEPT"), (node, "ACCEPT"), (destination_host, "ACCEPT"),
    ], allowed["summary"]  # fmt: skip
    assert allowed["agrees"] is True, allowed["summary"]

    project = stack.state["project_id"]
    net2 = next(
        port["id"] for port in stack.api("GET", "/ports")["ports"]
        if port["device_id"] == stack.state["router_id"]
        and any(f["ip_address"].startswith("203.0.113.") for f in port["fixed_ips"])
    )  # fmt: skip
    rule = stack.api("POST", "/fwaas/firewall_rules", {"firewall_rule": {
        "name": "deny-ping", "protocol": "icmp", "action": "deny", "project_id": project,
    }})["firewall_rule"]  # fmt: skip
    policy = stack.api("POST", "/fwaas/firewall_policies", {"firewall_policy": {
        "name": "lab-edge", "firewall_rules": [rule["id"]], "project_id": project,
    }})["firewall_policy"]  # fmt: skip
    group = stack.api("POST", "/fwaas/firewall_groups", {"firewall_group": {
        "name": "lab-fw", "project_id": project, "ports": [net2],
        "ingress_firewall_policy_id": policy["id"], "egress_firewall_policy_id": policy["id"],
    }})["firewall_group"]  # fmt: skip
    try:
        stack.wait("the ping stopped by the router", lambda: not stack.probe(NET1_VM, NET2_VM),
                   timeout=10)  # fmt: skip
        denied = start_trace(stack, NET1_VM, NET2_VM)
        assert denied["static"]["explanation"] == (
            "dropped by firewall rule deny-ping (policy lab-edge, position 1) on router "
            "lab-router interface to lab-net2"
        )
        kernel = denied["kernel"]
        assert [(hop["host"], hop["kernel"]) for hop in kernel["hops"]] == [
            (source_host, "ACCEPT"), (node, "DROP"), (destination_host, None),
        ], kernel["summary"]  # fmt: skip
        assert kernel["agrees"] is True and kernel["decided_by"] == node, kernel["summary"]
        assert kernel["hops"][1]["deciding"] == (
            "firewall rule deny-ping (policy lab-edge, position 1)"
        )
    finally:
        stack.api("DELETE", f"/fwaas/firewall_groups/{group['id']}")
        stack.api("DELETE", f"/fwaas/firewall_policies/{policy['id']}")
        stack.api("DELETE", f"/fwaas/firewall_rules/{rule['id']}")


def test_lab_down_removes_the_router_its_namespace_and_the_network_node(stack) -> None:
    """Last in the module: it takes the lab down (the fixture's own `lab down` finds nothing)."""
    node = stack.state["network_nodes"][0]
    stack.manage("lab", "down", "--prefix", stack.prefix)
    assert not list_namespaces(f"{node}-qrouter-")
    assert stack.db("SELECT count(*) FROM routers_router")[0][0] == 0
    assert stack.db("SELECT count(*) FROM networks_host WHERE name = ?", node)[0][0] == 0
