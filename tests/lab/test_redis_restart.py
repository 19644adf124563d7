"""A Redis that restarts empty: agents, control worker and web server all converge again.

Uses a redis-server of its own on a free port (never the machine's Redis), killed with SIGKILL
and started again without its data: revisions, desired states, queued tasks are all gone.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator

import pytest

from sgweb.kernel.runner import SpawnedProcess, default_runner
from tests.lab.stack import Stack, _free_port, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.redis]

SRC, DST = "h1-vm1", "h2-vm1"


def _start_redis(port: int) -> SpawnedProcess:
    process = default_runner().spawn(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--daemonize", "no"]
    )  # fmt: skip

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_for(f"redis on port {port}", answers, timeout=10)
    return process


@pytest.fixture(scope="module")
def redis_port() -> Iterator[list[SpawnedProcess | int]]:
    port = _free_port()
    holder: list = [port, _start_redis(port)]
    try:
        yield holder
    finally:
        holder[1].stop(timeout=2)


@pytest.fixture(scope="module")
def stack(redis_port) -> Iterator[Stack]:
    if os.geteuid() != 0:
        pytest.skip("kernel: needs root")
    lab = Stack(hosts=2, vms=1, redis_port=redis_port[0])
    try:
        yield lab.start()
    finally:
        lab.close()


def _restart_empty(redis_port: list) -> None:
    process = redis_port[1]
    os.kill(process.pid, signal.SIGKILL)
    process.stop(timeout=2)
    redis_port[1] = _start_redis(redis_port[0])


def test_changes_after_redis_restarted_empty_reach_the_kernel(stack, redis_port) -> None:
    rule = stack.api(
        "POST",
        "/security-group-rules",
        {"security_group_rule": {"security_group_id": stack.state["group_id"],
                                 "direction": "ingress", "ethertype": "IPv4",
                                 "protocol": "icmp"}},
    )["security_group_rule"]["id"]  # fmt: skip
    stack.wait("ping allowed", lambda: stack.probe(SRC, DST))

    _restart_empty(redis_port)
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


def test_a_change_made_while_redis_is_down_is_applied_once_it_is_back(stack, redis_port) -> None:
    process = redis_port[1]
    os.kill(process.pid, signal.SIGKILL)
    process.stop(timeout=2)
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
        redis_port[1] = _start_redis(redis_port[0])
    back = time.perf_counter()
    stack.wait("ping allowed once Redis is back", lambda: stack.probe(SRC, DST), timeout=45)
    print(f"applied {time.perf_counter() - back:.2f} s after Redis came back")
    stack.wait_in_sync(timeout=30)
