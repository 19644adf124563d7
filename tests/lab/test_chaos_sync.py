"""Chaos: kill -9 every process between the commit and the kernel, flush Redis; nothing is lost.

A real lab (2 hosts as network namespaces, an agent each, a control worker, the API server) on
a Redis of its own (so flushing it touches nobody else). Each round toggles an ICMP allow rule
of the lab group (deleting it is the change issue 10 saw lost) under one fault:

* web: the process that commits the change is killed (SIGKILL) after the commit, before its
  publish (a `manage.py shell` whose publish hook kills itself);
* control: the API hands the publish to the control worker, which is killed at once and
  started again;
* redis: Redis is flushed right after the change (desired states, queued tasks, heartbeats,
  revision counters: all gone);
* agent: both agents are killed right after the change and started again.

After every round, every host's kernel must match the state built from the database, the agents
must report the database's digest, and a real ping must agree with the database. Rounds:
`SGWEB_CHAOS_ROUNDS` (default 8, two per fault). Convergence times are printed, not asserted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import sys
import time
from collections.abc import Iterator

import pytest

from sgweb.kernel.runner import SpawnedProcess
from tests.lab import convergence
from tests.lab.stack import MANAGE, PrivateRedis, Stack, stack_on

pytestmark = [pytest.mark.kernel, pytest.mark.redis]

SRC, DST = "h1-vm1", "h2-vm1"
FAULTS = ("web", "control", "redis", "agent")
ROUNDS = int(os.environ.get("SGWEB_CHAOS_ROUNDS", "8"))

# Runs in `manage.py shell`: toggle the lab group's ICMP rule through the actions, and die by
# SIGKILL where the after-commit publish would start.
KILLED_AFTER_COMMIT = """
import os, signal
from sgweb import dispatch
from sgweb.lab.core import _lab_actor
from sgweb.security import actions
from sgweb.security.models import SecurityGroup

real = dispatch._host_sync

class DiesAfterCommit:
    def affected_hosts(self, change):
        return real.affected_hosts(change)

    def changed(self, hosts, reason):
        return real.changed(hosts, reason)

    def publish(self, receipts, reason):
        os.kill(os.getpid(), signal.SIGKILL)

dispatch.install_host_sync(DiesAfterCommit(), None)
actor = _lab_actor()
group = SecurityGroup.objects.get(pk="{group}")
icmp = group.rules.filter(protocol="icmp", direction="ingress").first()
if icmp is not None:
    actions.delete_security_group_rule(actor, icmp)
else:
    actions.create_security_group_rule(
        actor, group, direction="ingress", ethertype="IPv4", protocol="icmp"
    )
print("NOT KILLED")
"""


@pytest.fixture(scope="module")
def stack(redis_server: PrivateRedis) -> Iterator[Stack]:
    # Every API change goes through the control worker, so killing it is on the path.
    with stack_on(redis_server, hosts=2, vms=1, env={"SGWEB_PUBLISH_INLINE_HOSTS": "0"}) as lab:
        yield lab


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _start_control_worker(stack: Stack) -> SpawnedProcess:
    argv = ["env", *(f"{k}={v}" for k, v in stack.env.items()), sys.executable, "-m", "celery",
            "-A", "sgweb.celery", "worker", "-Q", stack.env["SGWEB_CONTROL_QUEUE"], "--pool",
            "solo", "--concurrency", "1", "--hostname", f"chaos-{time.monotonic_ns()}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
    process = stack.runner.spawn(argv)
    stack.processes.append(process)
    (stack.tmp / "lab" / "control.pid").write_text(str(process.pid))
    return process


def _toggle_icmp(stack: Stack) -> None:
    group = stack.state["group_id"]
    rules = stack.api("GET", f"/security-group-rules?security_group_id={group}&protocol=icmp")
    ingress = [r for r in rules["security_group_rules"] if r["direction"] == "ingress"]
    if ingress:
        stack.api("DELETE", f"/security-group-rules/{ingress[0]['id']}")
    else:
        body = {"security_group_id": group, "direction": "ingress", "ethertype": "IPv4",
                "protocol": "icmp"}  # fmt: skip
        stack.api("POST", "/security-group-rules", {"security_group_rule": body})


def _fault(stack: Stack, fault: str) -> None:
    if fault == "web":
        script = KILLED_AFTER_COMMIT.replace("{group}", stack.state["group_id"])
        env = [f"{k}={v}" for k, v in stack.env.items()]
        argv = ["env", *env, sys.executable, MANAGE, "shell", "-c", script]
        result = stack.runner.run(argv, check=False, timeout=120)
        assert result.returncode == -signal.SIGKILL, result.stdout + result.stderr
        return
    _toggle_icmp(stack)
    if fault == "control":
        _kill(int((stack.tmp / "lab" / "control.pid").read_text()))
        _start_control_worker(stack)
    elif fault == "redis":
        stack.redis.connection_pool.reset()
        stack.redis.flushall()
    elif fault == "agent":
        for host in stack.state["hosts"]:
            _kill(stack.agent_pid(host))
        for host in stack.state["hosts"]:
            stack.start_agent(host)


def _ping_agrees(stack: Stack, allowed: bool, label: str) -> None:
    """Real packets agree with the database (the rule in force, or gone)."""
    stack.wait(
        f"{label}: ping {'passes' if allowed else 'is dropped'}",
        lambda: stack.probe(SRC, DST) == allowed,
        timeout=60,
    )


def _check(stack: Stack) -> dict:
    return convergence.parse(stack.manage("shell", "-c", convergence.SCRIPT, timeout=120))


def test_nothing_committed_is_lost_whatever_process_dies_or_whatever_redis_forgets(
    stack, redis_server
) -> None:
    stack.wait_in_sync(timeout=60)
    took: dict[str, list[float]] = {fault: [] for fault in FAULTS}
    for round_number in range(ROUNDS):
        fault = FAULTS[round_number % len(FAULTS)]
        started = time.monotonic()
        _fault(stack, fault)
        last: dict = {}

        def converged() -> bool:
            nonlocal last
            last = _check(stack)
            return not convergence.divergences(last)

        stack.wait(
            f"round {round_number} ({fault}): every kernel as the database says",
            converged, timeout=120, every=0.5,
        )  # fmt: skip
        took[fault].append(time.monotonic() - started)
        _ping_agrees(stack, next(iter(last.values()))["icmp_allowed"], f"round {round_number}")
    every = [seconds for values in took.values() for seconds in values]
    print(f"\nchaos: {ROUNDS} rounds; converged after the fault in p50 "
          f"{statistics.median(every):.1f} s, max {max(every):.1f} s (includes ~2-4 s per "
          f"check of a manage.py process); per fault: "
          + ", ".join(f"{f} {max(v):.1f} s" for f, v in took.items() if v))  # fmt: skip
