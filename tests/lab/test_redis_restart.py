"""A Redis that restarts empty: agents, control worker and web server all converge again.

Uses a redis-server of its own on a free port (never the machine's Redis), killed with SIGKILL
and started again without its data: revisions, desired states, queued tasks are all gone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.lab.stack import PrivateRedis, Stack, stack_on

pytestmark = [pytest.mark.kernel, pytest.mark.redis]

SRC, DST = "h1-vm1", "h2-vm1"


@pytest.fixture(scope="module")
def stack(redis_server: PrivateRedis) -> Iterator[Stack]:
    with stack_on(redis_server, hosts=2, vms=1) as lab:
        yield lab


def test_changes_after_redis_restarted_empty_reach_the_kernel(stack, redis_server) -> None:
    rule = stack.api(
        "POST",
        "/security-group-rules",
        {"security_group_rule": {"security_group_id": stack.state["group_id"],
                                 "direction": "ingress", "ethertype": "IPv4",
                                 "protocol": "icmp"}},
    )["security_group_rule"]["id"]  # fmt: skip
    stack.wait("ping allowed", lambda: stack.probe(SRC, DST))

    redis_server.restart_empty()
    restarted = time.perf_counter()
    stack.api("DELETE", f"/security-group-rules/{rule}")
    stack.wait("ping blocked after the restart", lambda: not stack.probe(SRC, DST), timeout=30)
    print(f"\nconverged {time.perf_counter() - restarted:.2f} s after Redis restarted empty")
    stack.wait_in_sync(timeout=30)
    # Positive control: the same path opens again, so "blocked" above was the rule's removal
    # reaching the kernel, not a lab or an agent that stopped passing anything after the restart.
    again = stack.api(
        "POST",
        "/security-group-rules",
        {"security_group_rule": {"security_group_id": stack.state["group_id"],
                                 "direction": "ingress", "ethertype": "IPv4",
                                 "protocol": "icmp"}},
    )["security_group_rule"]["id"]  # fmt: skip
    stack.wait("ping allowed again after the restart", lambda: stack.probe(SRC, DST), timeout=30)
    stack.api("DELETE", f"/security-group-rules/{again}")
    stack.wait("ping blocked again", lambda: not stack.probe(SRC, DST), timeout=30)
    stack.wait_in_sync(timeout=30)


def test_a_change_made_while_redis_is_down_is_applied_once_it_is_back(stack, redis_server) -> None:
    redis_server.kill()
    try:
        started = time.perf_counter()
        stack.api(
            "POST",
            "/security-group-rules",
            {"security_group_rule": {"security_group_id": stack.state["group_id"],
                                     "direction": "ingress", "ethertype": "IPv4",
                                     "protocol": "icmp"}},
        )  # fmt: skip
        print(f"\nAPI answered in {time.perf_counter() - started:.2f} s with Redis down")
        assert not stack.probe(SRC, DST)
    finally:
        redis_server.start()
    back = time.perf_counter()
    stack.wait("ping allowed once Redis is back", lambda: stack.probe(SRC, DST), timeout=45)
    print(f"applied {time.perf_counter() - back:.2f} s after Redis came back")
    stack.wait_in_sync(timeout=30)
