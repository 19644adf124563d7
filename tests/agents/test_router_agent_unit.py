"""The network node's agent without a kernel: what it refuses, and that a refusal changes nothing.

The kernel tier (tests/kernel/test_router_agent_kernel.py) proves the applies with real packets;
here a fake runner shows which documents never reach iptables at all.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

from sgweb.firewall.fwaas import codec
from sgweb.firewall.fwaas.model import FirewallGroup, FirewallPolicy, FirewallRule, NetworkNodeState
from sgweb.wire import routers as wire
from sgweb.wire import sync as protocol
from tests.fakerunner import FakeRunner
from tests.firewall.fwaas.example import STATE
from worker.router_threads import RouterCuts
from worker.routers import RouterAgent

NODE = NetworkNodeState(host="network1", routers=(STATE,))


@dataclass
class MemoryRouterStore:
    desired: protocol.Desired | None = None
    applied: list[dict[str, Any]] = field(default_factory=list)

    def publish(self, revision: int, state: NetworkNodeState, digest: str | None = None) -> None:
        text = codec.dumps(state)
        self.desired = wire.parse_desired(
            wire.desired_document(revision, digest or codec.digest(text), text, time.time())
        )

    def desired_revision(self) -> int | None:
        return self.desired.revision if self.desired else None

    def fetch(self) -> protocol.Desired | None:
        return self.desired

    def set_applied(self, report: dict[str, Any]) -> None:
        self.applied.append(json.loads(json.dumps(report)))  # what Redis would hold


def agent(store: MemoryRouterStore, runner: FakeRunner) -> tuple[RouterAgent, list[dict]]:
    reports: list[dict] = []
    return RouterAgent("network1", store, runner, reports.append, netns_prefix="t-"), reports


def restores(runner: FakeRunner) -> list[str]:
    return [c.netns or "" for c in runner.calls if c.argv[0].endswith("tables-restore")]


def test_a_host_without_router_state_does_nothing() -> None:
    runner = FakeRunner()
    the_agent, reports = agent(MemoryRouterStore(), runner)
    assert the_agent.sync(3, "nudge").action == "missing"
    assert runner.calls == [] and reports == []


def test_a_document_whose_digest_does_not_match_is_refused_before_the_kernel() -> None:
    store = MemoryRouterStore()
    store.publish(1, NODE, digest="0" * 64)
    runner = FakeRunner()
    the_agent, reports = agent(store, runner)
    assert the_agent.sync(1).action == "failed"
    assert "digest does not match" in reports[-1]["error"] and restores(runner) == []
    assert store.applied[-1] == reports[-1]


def test_a_state_for_another_network_node_is_refused() -> None:
    store = MemoryRouterStore()
    store.publish(1, replace(NODE, host="network2"))
    runner = FakeRunner()
    the_agent, reports = agent(store, runner)
    assert the_agent.sync(1).action == "failed"
    assert "network2" in reports[-1]["error"] and restores(runner) == []


def test_a_state_the_compiler_refuses_never_reaches_the_kernel() -> None:
    bad = FirewallRule(id="r-bad", name="bad", protocol="icmp", destination_port="22")
    group = FirewallGroup(
        id="fg-bad",
        egress_policy=FirewallPolicy(id="p", rules=(bad,)),
        ports=(STATE.router.interfaces[0].port_id,),
    )
    store = MemoryRouterStore()
    store.publish(1, NetworkNodeState("network1", (replace(STATE, firewall_groups=(group,)),)))
    runner = FakeRunner()
    the_agent, reports = agent(store, runner)
    assert the_agent.sync(1).action == "failed"
    assert reports[-1]["error"].startswith("refused by the compiler")
    assert restores(runner) == [] and the_agent.applied is None


def test_the_first_apply_is_whole_tables_in_the_router_namespace_and_a_repeat_is_skipped() -> None:
    store = MemoryRouterStore()
    store.publish(1, NODE)
    runner = FakeRunner()
    the_agent, reports = agent(store, runner)
    assert the_agent.sync(1).action == "applied"
    assert restores(runner) == [f"t-qrouter-{STATE.router.id}"] * 2
    assert reports[-1]["mode"] == "full" and reports[-1]["ok"]
    assert the_agent.sync(1).action == "skipped"
    assert the_agent.heartbeat_payload()["router_revision"] == 1


def test_when_one_router_refuses_its_table_the_routers_that_took_theirs_are_put_back() -> None:
    second = replace(STATE, router=replace(STATE.router, id="r2-0000-0000", name="r2"))
    store = MemoryRouterStore()
    store.publish(1, NetworkNodeState("network1", (STATE, second)))
    runner = FakeRunner()
    the_agent, reports = agent(store, runner)
    assert the_agent.sync(1).action == "applied"
    policy = STATE.firewall_groups[1].egress_policy
    assert policy is not None
    fewer = replace(policy, rules=policy.rules[1:])
    groups = tuple(
        replace(g, egress_policy=fewer) if g.egress_policy else g for g in STATE.firewall_groups
    )
    changed = (replace(STATE, firewall_groups=groups), replace(second, firewall_groups=groups))
    store.publish(2, NetworkNodeState("network1", changed))
    runner.on(
        ("iptables-restore",), returncode=2, stderr="line 3 failed", netns="t-qrouter-r2-0000-0000"
    )
    runner.calls.clear()
    assert the_agent.sync(2).action == "failed"
    assert reports[-1]["failed_router"] == "r2-0000-0000"
    assert reports[-1]["still_applied"] == 1
    first_netns = f"t-qrouter-{STATE.router.id}"
    first_router = [
        c for c in runner.calls if c.netns == first_netns and c.argv[0] == "iptables-restore"
    ]
    assert len(first_router) == 2  # the change, then the change undone
    assert the_agent.applied is not None and the_agent.applied.revision == 1


def test_the_cuts_list_no_connections_of_a_router_whose_namespace_tracks_none() -> None:
    counts = {"quiet": 0, "busy": 3, "unknown": None}
    listed: list[str] = []

    class Firewall:
        def __init__(self, router_id: str) -> None:
            self.router_id = router_id

        def cut_denied_connections(self, state: Any) -> list[Any]:
            listed.append(self.router_id)
            return []

    cuts = RouterCuts(Firewall, counts.get)  # type: ignore[arg-type]
    cuts.submit([replace(STATE, router=replace(STATE.router, id=name)) for name in counts])
    assert cuts.wait_idle(5)
    assert sorted(listed) == ["busy", "unknown"] and cuts.skipped_total == 1
