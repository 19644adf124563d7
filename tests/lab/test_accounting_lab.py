"""Accounting on a real lab: real pings, kernel counters, agents, Celery, Redis and the API.

One stack (one lab host with two VMs, its agent, the control worker, the API server) on a
redis-server of its own (so that it may be killed), agents reading every counter each second.
Counts are asserted exactly where the kernel is exact (each ping is one echo request that the
ICMP rule counts once), and the accounting must reach the same number: once, never twice.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator

import pytest

from tests.lab.stack import PrivateRedis, Stack, stack_on

pytestmark = [pytest.mark.kernel, pytest.mark.redis]

SRC, DST = "h1-vm1", "h1-vm2"


@pytest.fixture(scope="module")
def stack(redis_server: PrivateRedis) -> Iterator[Stack]:
    with stack_on(redis_server, hosts=1, vms=2, env={"SGWEB_ACCOUNTING_INTERVAL_S": "1"}) as lab:
        yield lab


def add_rule(stack: Stack, **fields: object) -> str:
    body = {"security_group_id": stack.state["group_id"], "direction": "ingress",
            "ethertype": "IPv4", **fields}  # fmt: skip
    return stack.api("POST", "/security-group-rules", {"security_group_rule": body})[
        "security_group_rule"
    ]["id"]


def kernel_packets(stack: Stack, rule_id: str) -> int:
    """The kernel's count for one security group rule, every chain of the host."""
    host = stack.host_of(DST)
    saved = stack.runner.run(["iptables-save", "-c", "-t", "filter"], netns=host).stdout
    total = 0
    for line in saved.splitlines():
        if f"sg-rule {rule_id}" in line:
            total += int(re.match(r"\[(\d+):", line).group(1))  # type: ignore[union-attr]
    return total


def api_hits(stack: Stack, rule_id: str) -> dict:
    return stack.api("GET", f"/security-group-rules/{rule_id}/hits?window=1h")["rule_hits"]


def page_kept_packets(stack: Stack, rule_id: str) -> int:
    """What the group page shows as the rule's kept total (rendered by the stack's own Django)."""
    out = stack.manage(
        "shell", "-c",
        "from django.test import Client; from sgweb.lab.core import _lab_actor; "
        "client = Client(HTTP_HOST='localhost'); client.force_login(_lab_actor()); "
        f"page = client.get('/security-groups/{stack.state['group_id']}'); "
        "print(page.status_code); print(page.content.decode())",
    )  # fmt: skip
    found = re.search(rf'data-rule-id="{rule_id}"[^>]*data-kept-packets="(\d+)"', out)
    assert found, f"the rule's row is not on the group page: {out[:300]}"
    return int(found.group(1))


def ping(stack: Stack, times: int) -> None:
    for _ in range(times):
        assert stack.probe(SRC, DST), "the ICMP rule should let the ping through"


def counted(stack: Stack, rule_id: str, packets: int, timeout: float = 30) -> None:
    stack.wait(
        f"{packets} packets counted for {rule_id}",
        lambda: api_hits(stack, rule_id)["packets"] >= packets,
        timeout=timeout,
        every=0.3,
    )


@pytest.fixture
def icmp_rule(stack: Stack) -> Iterator[str]:
    rule = add_rule(stack, protocol="icmp")
    stack.wait("ping allowed", lambda: stack.probe(SRC, DST))
    try:
        yield rule
    finally:
        stack.api("DELETE", f"/security-group-rules/{rule}")
        stack.wait_in_sync()


def test_pings_a_rule_counted_survive_an_unrelated_rule_in_the_kernel_the_api_and_the_page(
    stack: Stack, icmp_rule: str
) -> None:
    ping(stack, 4)
    before = kernel_packets(stack, icmp_rule)
    assert before >= 4
    counted(stack, icmp_rule, before)
    unrelated = add_rule(stack, protocol="tcp", port_range_min=22, port_range_max=22)
    try:
        stack.wait_in_sync()
        assert kernel_packets(stack, icmp_rule) == before, "the kernel counter was reset"
        time.sleep(2.5)  # two accounting intervals after the change
        hits = api_hits(stack, icmp_rule)
        assert hits["packets"] == before, "accounting lost or double-counted the earlier pings"
        assert hits["last_hit_at"] is not None and hits["window_packets"] == before
        assert page_kept_packets(stack, icmp_rule) == before
        ping(stack, 1)
        counted(stack, icmp_rule, before + 1)
        assert api_hits(stack, unrelated)["packets"] == 0
    finally:
        stack.api("DELETE", f"/security-group-rules/{unrelated}")


def test_an_agent_killed_and_restarted_counts_what_it_missed_once(
    stack: Stack, icmp_rule: str
) -> None:
    host = stack.host_of(DST)
    ping(stack, 2)
    before = kernel_packets(stack, icmp_rule)
    counted(stack, icmp_rule, before)
    os.kill(stack.agent_pid(host), signal.SIGKILL)
    ping(stack, 3)  # the rules stay in force while the agent is away; the kernel counts
    stack.start_agent(host)
    stack.wait("the restarted agent applied", lambda: stack.in_sync(host), timeout=40)
    # The restart re-applies every chain: the counters are carried over, not zeroed.
    assert kernel_packets(stack, icmp_rule) == before + 3
    counted(stack, icmp_rule, before + 3, timeout=40)
    time.sleep(2.5)
    assert api_hits(stack, icmp_rule)["packets"] == before + 3, "counted twice"


def test_redis_restarting_empty_loses_at_most_one_interval_and_says_so(
    stack: Stack, icmp_rule: str, redis_server: PrivateRedis
) -> None:
    ping(stack, 2)
    before = kernel_packets(stack, icmp_rule)
    counted(stack, icmp_rule, before)
    redis_server.restart_empty()
    stack.wait_in_sync(timeout=45)
    ping(stack, 3)
    now = kernel_packets(stack, icmp_rule)
    # Nothing was pinging while Redis restarted: every packet arrives, late at worst.
    counted(stack, icmp_rule, now, timeout=45)
    lost = stack.db(
        "SELECT lost_intervals FROM accounting_hostaccounting a JOIN networks_host h "
        "ON a.host_id = h.id WHERE h.name = ?",
        stack.host_of(DST),
    )[0][0]
    assert lost <= 1
    assert api_hits(stack, icmp_rule)["packets"] == now
