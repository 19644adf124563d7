"""The accounting's time budget on a real lab: a reading that may read one chain only still
counts every real ping, once, by reading the chains in turns.

One stack (one lab host with two VMs, its agent, the control worker, the API server) whose agent
has a budget far too small for even one chain (`SGWEB_ACCOUNTING_BUDGET_MS`): every reading
reads a single chain, the one that waited longest, and leaves the rest to the next.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.lab.stack import PrivateRedis, Stack, stack_on
from tests.lab.test_accounting_lab import DST, SRC, add_rule, api_hits, kernel_packets, ping

pytestmark = [pytest.mark.kernel, pytest.mark.redis]


@pytest.fixture(scope="module")
def stack(redis_server: PrivateRedis) -> Iterator[Stack]:
    env = {"SGWEB_ACCOUNTING_INTERVAL_S": "0.5", "SGWEB_ACCOUNTING_BUDGET_MS": "0.001"}
    with stack_on(redis_server, hosts=1, vms=2, env=env) as lab:
        yield lab


def test_a_reading_with_time_for_one_chain_counts_every_ping_once_in_turns(stack: Stack) -> None:
    rule = add_rule(stack, protocol="icmp")
    stack.wait("ping allowed", lambda: stack.probe(SRC, DST))
    try:
        ping(stack, 5)
        kernel = kernel_packets(stack, rule)
        assert kernel >= 5
        stack.wait(
            "the pings counted, the chains read in turns",
            lambda: api_hits(stack, rule)["packets"] >= kernel,
            timeout=60, every=0.5,
        )  # fmt: skip
        time.sleep(3)  # readings go on: nothing is counted twice
        assert api_hits(stack, rule)["packets"] == kernel_packets(stack, rule) == kernel
    finally:
        stack.api("DELETE", f"/security-group-rules/{rule}")
