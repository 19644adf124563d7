"""Lab hosts with real agents: API changes reach the kernel, crashes and drift converge.

One stack (database, Redis keys, two lab hosts with two VMs each, agents, control worker and the
API server, all real processes) is shared by the module; each test leaves the lab's group as it
found it. Timings are printed (run with -s to see them), never asserted.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sgweb.firewall.render import IPSET_TYPE
from tests.lab.stack import ECHO, Stack

pytestmark = [pytest.mark.kernel, pytest.mark.redis]

SRC, DST = "h1-vm1", "h2-vm2"  # on different hosts
NET2 = "h1-net2-vm1"  # the first host's VM on the second network (lab-net2, 203.0.113.0/24)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    if os.geteuid() != 0:
        pytest.skip("kernel: needs root")
    lab = Stack(hosts=2, vms=2)
    try:
        yield lab.start()
    finally:
        lab.close()


def add_rule(stack: Stack, **fields: object) -> str:
    body = {"security_group_id": stack.state["group_id"], "direction": "ingress", **fields}
    rule = stack.api("POST", "/security-group-rules", {"security_group_rule": body})
    return rule["security_group_rule"]["id"]


def test_a_rule_created_through_the_api_opens_traffic_and_deleting_it_cuts_it(stack) -> None:
    stack.listen(DST, 5001)
    assert not stack.probe(SRC, DST, "tcp", 5001), "tcp/5001 should start blocked"
    assert not stack.probe(SRC, DST), "ping should start blocked"

    started = time.perf_counter()
    rule_id = add_rule(stack, ethertype="IPv4", protocol="tcp", port_range_min=5001,
                       port_range_max=5001)  # fmt: skip
    returned = time.perf_counter()
    stack.wait("tcp/5001 allowed", lambda: stack.probe(SRC, DST, "tcp", 5001), every=0.02)
    print(f"\nrule added: API {returned - started:.3f} s, traffic allowed "
          f"{time.perf_counter() - returned:.3f} s after the API returned")  # fmt: skip

    client = stack.spawn_in(
        SRC, [sys.executable, "-I", ECHO, "client", stack.ip(DST), "5001"], stream=True
    )
    assert json.loads(client.stdout.readline()).get("connected")
    assert json.loads(client.stdout.readline())["ok"], "the existing connection should echo"

    stack.api("DELETE", f"/security-group-rules/{rule_id}")
    deleted = time.perf_counter()

    def existing_connection_dead() -> bool:
        line = json.loads(client.stdout.readline())
        return not line["ok"] and line["t"] > time.time() - 0.5

    stack.wait("the existing connection cut", existing_connection_dead, timeout=10, every=0)
    cut = time.perf_counter() - deleted
    stack.wait("new connections blocked", lambda: not stack.probe(SRC, DST, "tcp", 5001))
    print(f"rule deleted: existing connection cut {cut:.3f} s, new ones blocked "
          f"{time.perf_counter() - deleted:.3f} s after the API returned")  # fmt: skip
    client.stop(timeout=1)
    report = stack.applied_report(stack.host_of(DST))
    assert report["conntrack_deleted"] >= 1, report


def test_an_ipv6_rule_opens_ipv6_traffic_between_hosts(stack) -> None:
    assert not stack.probe(SRC, DST, family=6), "ICMPv6 echo should start blocked"
    rule_id = add_rule(stack, ethertype="IPv6", protocol="ipv6-icmp")
    stack.wait("ICMPv6 echo allowed", lambda: stack.probe(SRC, DST, family=6))
    assert not stack.probe(SRC, DST), "an IPv6 rule must not open IPv4"
    stack.api("DELETE", f"/security-group-rules/{rule_id}")
    stack.wait("ICMPv6 echo blocked again", lambda: not stack.probe(SRC, DST, family=6))
    stack.wait_in_sync()


def test_a_vm_on_the_second_network_pings_out_and_gets_its_reply(stack) -> None:
    """Host 1 has ports of two networks, and the control plane names no bridge: each port's
    conntrack zone is set on its tap and its qvb, so the replies to what NET2 opens come back
    as ESTABLISHED (the only thing that lets them in: the rule admits NET2's address alone)."""
    assert stack.vm(NET2)["host"] == stack.vm(SRC)["host"] and stack.ip(NET2).startswith("203.")
    assert not stack.probe(NET2, DST), "ping should start blocked"
    for family in (4, 6):
        rule_id = add_rule(
            stack,
            ethertype=f"IPv{family}",
            protocol="icmp" if family == 4 else "ipv6-icmp",
            remote_ip_prefix=f"{stack.ip(NET2, family)}/{32 if family == 4 else 128}",
        )
        stack.wait(
            f"IPv{family} ping from {NET2} and its reply",
            lambda family=family: stack.probe(NET2, DST, family=family),
        )
        assert stack.probe(NET2, SRC, family=family), "the same host, the other network"
        assert not stack.probe(SRC, NET2, family=family), "only NET2's address is admitted"
        stack.api("DELETE", f"/security-group-rules/{rule_id}")
        stack.wait(
            f"IPv{family} ping blocked again",
            lambda family=family: not stack.probe(NET2, DST, family=family),
        )
    stack.wait_in_sync()


def test_a_port_joining_a_remote_group_changes_only_ipset_members(stack) -> None:
    project = stack.state["project_id"]
    peers = stack.api(
        "POST", "/security-groups", {"security_group": {"name": "peers", "tenant_id": project}}
    )["security_group"]["id"]
    rule_id = add_rule(stack, ethertype="IPv4", protocol="icmp", remote_group_id=peers)
    stack.wait_in_sync()
    assert not stack.probe(SRC, DST), "no member of peers yet"

    source_port = stack.vm(SRC)["port_id"]
    dst_host = stack.host_of(DST)
    before = stack.desired_revision(dst_host)
    stack.api(
        "PUT",
        f"/ports/{source_port}",
        {"port": {"security_groups": [stack.state["group_id"], peers]}},
    )
    stack.wait("the ping allowed", lambda: stack.probe(SRC, DST))
    stack.wait_in_sync()
    report = stack.applied_report(dst_host)
    assert report["revision"] > before
    assert report["iptables_restored"] == [] and report["ipset_changed"], report
    print(f"\nmembership change on {dst_host}: {report['duration_ms']} ms, steps {report['steps']}")

    stack.api(
        "PUT", f"/ports/{source_port}", {"port": {"security_groups": [stack.state["group_id"]]}}
    )
    stack.wait("the ping blocked again", lambda: not stack.probe(SRC, DST))
    stack.api("DELETE", f"/security-group-rules/{rule_id}")
    stack.api("DELETE", f"/security-groups/{peers}")
    stack.wait_in_sync()


def test_port_security_off_lets_everything_through_and_on_filters_again(stack) -> None:
    port = stack.vm(DST)["port_id"]
    stack.listen(DST, 5002)
    assert not stack.probe(SRC, DST, "tcp", 5002)
    stack.api(
        "PUT", f"/ports/{port}", {"port": {"security_groups": [], "port_security_enabled": False}}
    )
    stack.wait("unfiltered traffic", lambda: stack.probe(SRC, DST, "tcp", 5002))
    assert stack.probe(SRC, DST)
    stack.api(
        "PUT",
        f"/ports/{port}",
        {"port": {"port_security_enabled": True, "security_groups": [stack.state["group_id"]]}},
    )
    stack.wait("filtered again", lambda: not stack.probe(SRC, DST, "tcp", 5002))
    assert not stack.probe(SRC, DST)
    stack.wait_in_sync()


def test_flushing_a_lab_host_by_hand_is_reported_as_drift_and_repaired(stack) -> None:
    host = stack.host_of(DST)
    rule_id = add_rule(stack, ethertype="IPv4", protocol="icmp")
    stack.wait_in_sync()
    stack.wait("ping allowed", lambda: stack.probe(SRC, DST))
    rules = stack.iptables_rules(host)
    stack.runner.run(["iptables", "-F"], netns=host)
    flushed = time.perf_counter()
    stack.wait("the rules repaired", lambda: stack.iptables_rules(host) == rules, timeout=20)
    print(f"\ndrift repaired {time.perf_counter() - flushed:.2f} s after iptables -F")
    drift = stack.wait(
        "a drift event",
        lambda: stack.db(
            "select e.message from hostsync_hostevent e join networks_host h on h.id = e.host_id"
            " where h.name = ? and e.kind = 'drift'",
            host,
        ),
    )
    assert "repaired" in drift[0][0]
    assert stack.probe(SRC, DST)
    stack.api("DELETE", f"/security-group-rules/{rule_id}")
    stack.wait_in_sync()


def test_an_agent_killed_during_an_apply_converges_when_it_comes_back(stack) -> None:
    host = stack.host_of(DST)
    pid = stack.agent_pid(host)
    rule_id = add_rule(stack, ethertype="IPv4", protocol="icmp")
    # Kill it while one of its restore commands runs, if we catch one (applies take ~20 ms).
    caught = _kill_during_restore(pid, within_s=2.0)
    print(f"\nagent killed {'while restoring' if caught else 'around the apply'}")
    stack.start_agent(host)
    # A restarted agent starts Celery and reads its state first: 20 s and more on a loaded
    # machine, so the deadline is generous (it only bounds a hang).
    stack.wait("ping allowed after the restart", lambda: stack.probe(SRC, DST), timeout=90)
    stack.wait_in_sync()

    # Down while things change: the restarted agent reads the newest state and converges.
    os.kill(stack.agent_pid(host), signal.SIGKILL)
    stack.api("DELETE", f"/security-group-rules/{rule_id}")
    time.sleep(0.5)
    assert stack.probe(SRC, DST), "nobody applied the change while the agent was down"
    stack.start_agent(host)
    stack.wait("ping blocked after the restart", lambda: not stack.probe(SRC, DST), timeout=90)
    stack.wait_in_sync()
    # Positive control: the restarted agent still opens the path, so "blocked" above was the
    # deletion applied, not a host that passes nothing after the kill.
    again = add_rule(stack, ethertype="IPv4", protocol="icmp")
    stack.wait("ping allowed again by the restarted agent", lambda: stack.probe(SRC, DST))
    stack.api("DELETE", f"/security-group-rules/{again}")
    stack.wait("ping blocked again", lambda: not stack.probe(SRC, DST))
    stack.wait_in_sync()


def _kill_during_restore(pid: int, within_s: float) -> bool:
    """SIGKILL `pid` as soon as it has an iptables/ipset child; True if it had one."""
    deadline = time.monotonic() + within_s
    tasks = Path(f"/proc/{pid}/task")
    while time.monotonic() < deadline:
        children: list[str] = []
        for task in tasks.glob("*/children"):
            try:
                children += task.read_text().split()
            except OSError:
                continue
        for child in children:
            try:
                name = Path(f"/proc/{child}/comm").read_text().strip()
            except OSError:
                continue
            if name.startswith(("iptables", "ip6tables", "ipset")):
                os.kill(pid, signal.SIGKILL)
                return True
        time.sleep(0.0005)
    os.kill(pid, signal.SIGKILL)
    return False


def test_a_state_the_kernel_refuses_keeps_previous_rules_and_marks_the_host_failed(stack) -> None:
    host = stack.host_of(DST)
    project = stack.state["project_id"]
    allow = add_rule(stack, ethertype="IPv4", protocol="icmp")
    stack.wait_in_sync()
    peers = stack.api(
        "POST", "/security-groups", {"security_group": {"name": "clash", "tenant_id": project}}
    )["security_group"]["id"]
    # A set of ours by name but of another type: `ipset restore` will refuse to create it.
    clash = "IPv4" + peers[:20]
    other_type = "hash:net" if IPSET_TYPE == "hash:ip" else "hash:ip"
    stack.runner.run(["ipset", "create", clash, other_type], netns=host)
    try:
        bad = add_rule(stack, ethertype="IPv4", protocol="tcp", remote_group_id=peers)
        status = stack.wait(
            "the host marked failed",
            lambda: stack.db(
                "select status, last_error from networks_host where name = ? and status = 'failed'",
                host,
            ),
        )
        assert clash in status[0][1] or "exist" in status[0][1], status
        assert stack.probe(SRC, DST), "the previous rules must stay in force"
    finally:
        stack.runner.run(["ipset", "destroy", clash], netns=host, check=False)
    stack.api("DELETE", f"/security-group-rules/{bad}")
    stack.wait(
        "the host in sync again",
        lambda: stack.db("select 1 from networks_host where name = ? and status = 'in-sync'", host),
    )
    stack.api("DELETE", f"/security-group-rules/{allow}")
    stack.api("DELETE", f"/security-groups/{peers}")
    stack.wait_in_sync()


def test_a_stateless_group_needs_rules_for_its_replies(stack) -> None:
    """Stateful, a rule for the request is enough; stateless, the reply is a packet of its own
    that the receiving port's rules must allow (no conntrack entry lets it back in)."""
    project = stack.state["project_id"]
    raw = stack.api(
        "POST",
        "/security-groups",
        {"security_group": {"name": "raw", "stateful": False, "tenant_id": project}},
    )["security_group"]["id"]
    stack.api(
        "POST",
        "/security-group-rules",
        {
            "security_group_rule": {
                "security_group_id": raw, "direction": "ingress", "ethertype": "IPv4",
                "protocol": "tcp", "port_range_min": 5003, "port_range_max": 5003,
            }
        },
    )  # fmt: skip
    ports = [stack.vm(SRC)["port_id"], stack.vm(DST)["port_id"]]
    stack.listen(DST, 5003)
    try:
        for port in ports:
            stack.api("PUT", f"/ports/{port}", {"port": {"security_groups": [raw]}})
        stack.wait_in_sync()
        # The SYN reaches the listener; its SYN-ACK meets no rule on the way back into SRC.
        assert not stack.probe(SRC, DST, "tcp", 5003), "replies need a rule of their own"
        stack.api(
            "POST",
            "/security-group-rules",
            {
                "security_group_rule": {
                    "security_group_id": raw, "direction": "ingress", "ethertype": "IPv4",
                    "protocol": "tcp", "port_range_min": 1024, "port_range_max": 65535,
                    "remote_ip_prefix": f"{stack.ip(DST)}/32",
                }
            },
        )  # fmt: skip
        stack.wait("the reply allowed", lambda: stack.probe(SRC, DST, "tcp", 5003), timeout=30)
    finally:
        for port in ports:
            stack.api(
                "PUT", f"/ports/{port}", {"port": {"security_groups": [stack.state["group_id"]]}}
            )
        stack.api("DELETE", f"/security-groups/{raw}")
        stack.wait_in_sync()


def test_a_lab_port_is_active_once_its_hosts_agent_applied_it(stack) -> None:
    port = stack.vm(SRC)["port_id"]
    stack.api("PUT", f"/ports/{port}", {"port": {"description": "touched by a test"}})

    def status() -> str:
        return stack.api("GET", f"/ports/{port}")["port"]["status"]

    # Polled gently: each request of the threaded dev server holds a database connection for
    # a while (CONN_MAX_AGE), and a fast poll exhausts PostgreSQL's max_connections.
    stack.wait("the port ACTIVE", lambda: status() == "ACTIVE", timeout=60, every=1.0)
    active = stack.api("GET", "/ports?status=ACTIVE")["ports"]
    assert port in {item["id"] for item in active}
