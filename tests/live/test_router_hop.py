"""A routed trace's router hop on the agent side, against a scripted runner (issue 16): the
network node traces the router's namespace and says which firewall rule decided; when the
router cannot be traced, the hosts around it say what they can."""

from __future__ import annotations

import os
import secrets
import types
from typing import Any

import pytest
import redis

from sgweb.firewall.fwaas.compiler import FORWARD_CHAIN, compile_router
from sgweb.firewall.fwaas.model import (
    DENY,
    FirewallGroup,
    FirewallPolicy,
    FirewallRule,
    Router,
    RouterInterface,
    RouterState,
)
from sgweb.kernel.runner import CommandResult
from sgweb.wire import traces as protocol
from tests.fakerunner import FakeRunner, RecordedCall
from worker import trace_summary, trace_verdict, tracing

ROUTER_ID = "0e0e0e0e-1111-4000-8000-00000000000a"
NET1 = RouterInterface("11111111-aaaa-4000-8000-000000000001", "n1", "s1", "198.51.100.0/24",
                       "198.51.100.1", "fa:16:3e:00:01:01", "lab-net")  # fmt: skip
NET2 = RouterInterface("22222222-bbbb-4000-8000-000000000002", "n2", "s2", "203.0.113.0/24",
                       "203.0.113.1", "fa:16:3e:00:01:02", "lab-net2")  # fmt: skip
DENY_PING = FirewallRule("rule-deny-ping", "deny-ping", protocol="icmp", action=DENY)
EDGE = FirewallPolicy("policy-edge", "lab-edge", (DENY_PING,))
GROUP = FirewallGroup("group-lab-fw", "lab-fw", EDGE, EDGE, (NET2.port_id,))
STATE = RouterState(Router(ROUTER_ID, "lab-router", (NET1, NET2)), (GROUP,))
COMPILED = compile_router(STATE)
ROUTER_NS = f"lab-network1-qrouter-{ROUTER_ID}"
SRC, DST = "198.51.100.10", "203.0.113.10"


def _chains() -> dict[str, tuple[str, ...]]:
    chains = dict(COMPILED.family(4).chains)
    chains["FORWARD"] = ("-j neutron-filter-top", f"-j {FORWARD_CHAIN}")
    return chains


def _handle(chain: str, position: int) -> str:
    """The nft handle the scripted listing gives rule `position` (1-based) of `chain`."""
    return hex(0x40 + position - 1)


def _denied_ping() -> str:
    """xtables-monitor's account of the ping leaving by lab-net2, dropped by deny-ping."""
    layout = COMPILED.family(4)
    out = next(i for i, j in enumerate(layout.jumps, 1)
               if j.option == "-o" and j.device == NET2.device and not j.default)  # fmt: skip
    policy = layout.jumps[out - 1].target
    dropped = "neutron-l3-agent-dropped"
    mark = f"-4 -t raw -A PREROUTING -s {SRC}/32 -d {DST}/32 -p icmp -j TRACE"
    steps = [
        f"raw:PREROUTING:rule:0x2:CONTINUE  {mark}",
        "raw:PREROUTING:policy:ACCEPT",
        f"filter:FORWARD:rule:{_handle('FORWARD', 2)}:JUMP:{FORWARD_CHAIN}  -4 -t filter -A "
        f"FORWARD -j {FORWARD_CHAIN}",
        f"filter:{FORWARD_CHAIN}:rule:{_handle(FORWARD_CHAIN, out)}:JUMP:{policy}  -4 -t filter "
        f"-A {FORWARD_CHAIN} -o {NET2.device} -j {policy}",
        f"filter:{policy}:rule:{_handle(policy, 3)}:JUMP:{dropped}  -4 -t filter -A {policy} "
        f"-p icmp -j {dropped}",
        f"filter:{dropped}:rule:{_handle(dropped, 1)}:DROP  -4 -t filter -A {dropped} -j DROP",
    ]
    header = f"PACKET: 2 5b5b5b5b IN=qr-11111111-aa OUT=qr-22222222-bb SRC={SRC} DST={DST} LEN=84"
    return "\n".join([header, *(f" TRACE: 2 5b5b5b5b {step}" for step in steps)]) + "\n"


def _listing(call: RecordedCall) -> CommandResult:
    chain = call.argv[-1]
    rules = _chains().get(chain, ())
    lines = ["table ip filter {", f"\tchain {chain} {{"]
    lines += [f"\t\tcounter packets 0 bytes 0 # handle {0x40 + i}" for i in range(len(rules))]
    return CommandResult(call.argv, 0, "\n".join(lines) + "\n", "", 0.0, call.netns)


@pytest.fixture
def board():
    client = redis.Redis.from_url("redis://127.0.0.1:6379/12")
    prefix = f"sgwt-{os.getpid()}-{secrets.token_hex(3)}"
    yield client, prefix
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def _node(runner: FakeRunner, client: Any, prefix: str) -> Any:
    """The network node's port agent (its own namespace, no ports) as the proof sees it."""
    return types.SimpleNamespace(
        host="network1", applied=None, pause_drift=lambda seconds: None,
        firewall=types.SimpleNamespace(netns="lab-network1", runner=runner),
        store=types.SimpleNamespace(client=client, keys=types.SimpleNamespace(prefix=prefix)),
    )  # fmt: skip


def _routers(compiled: dict[str, Any]) -> Any:
    return types.SimpleNamespace(
        applied=types.SimpleNamespace(compiled=compiled),
        netns=lambda router_id: f"lab-network1-qrouter-{router_id}",
    )


def _hop_request(trace_id: str) -> protocol.ProofRequest:
    hops = [
        {"host": "compute2", "static": "ACCEPT", "traced": True, "why": ""},
        {"host": "network1", "static": "DROP", "traced": True, "why": "",
         "router_id": ROUTER_ID, "router": "lab-router"},
        {"host": "compute1", "static": None, "traced": True, "why": ""},
    ]  # fmt: skip
    return protocol.ProofRequest(
        trace_id=trace_id, host="network1", mode=protocol.MODE_OBSERVE, family=4,
        protocol="icmp", src=SRC, dst=DST, icmp_type=8, static_verdict="DROP",
        role=protocol.ROLE_HOP, prover_host="compute2", hops=hops,
    )  # fmt: skip


@pytest.mark.redis
def test_the_network_node_traces_the_router_namespace_and_names_the_rule_that_dropped(board):
    client, prefix = board
    runner = FakeRunner()
    runner.on(["stdbuf", "-oL", "xtables-monitor"], stdout=_denied_ping())
    runner.on(["nft", "-a", "list", "chain"], respond=_listing)
    client.set(protocol.board_key(prefix, "r1", "compute2", "done"), "{}")
    emitted: list[dict[str, Any]] = []
    hop = tracing.prove(_hop_request("r1"), _node(runner, client, prefix), emitted.append,
                        runner=runner, router_agent=_routers({ROUTER_ID: COMPILED}))  # fmt: skip
    assert hop["error"] is None and hop["kernel_verdict"] == "DROP"
    assert hop["deciding"] == "firewall rule deny-ping (policy lab-edge, position 1)"
    [packet] = emitted
    assert packet["host"] == "network1" and packet["verdict"] == "DROP"
    assert packet["router"] == "lab-router"  # the page says whose namespace this was
    # The DROP line itself is said in the words of the rule that sent the packet there.
    drop = packet["steps"][-1]
    assert drop["verdict"] == "DROP" and drop["rule_id"] == "rule-deny-ping"
    assert drop["label"] == "firewall rule deny-ping (policy lab-edge, position 1)"
    labels = [step["label"] for step in packet["steps"]]
    assert f"firewall group lab-fw (ingress on {NET2.device})" in labels
    # Every TRACE rule, the monitor and the listings were in the router's namespace.
    traced = [call for call in runner.calls if call.argv[0] in ("iptables", "stdbuf", "nft")]
    assert traced and {call.netns for call in traced} == {ROUTER_NS}


@pytest.mark.redis
def test_a_node_that_does_not_run_the_router_says_so_and_traces_nothing(board):
    client, prefix = board
    runner = FakeRunner()
    client.set(protocol.board_key(prefix, "r2", "compute2", "done"), "{}")
    hop = tracing.prove(_hop_request("r2"), _node(runner, client, prefix), lambda m: None,
                        runner=runner, router_agent=_routers({}))  # fmt: skip
    assert hop["error"] == "router lab-router is not applied on network node network1"
    assert not any("TRACE" in argv for argv in runner.commands())


def _rows(router_kernel: str | None, router_traced: bool) -> list[dict[str, Any]]:
    def row(host: str, static: str | None, kernel: str | None, traced: bool = True) -> dict:
        agrees = trace_verdict.hop_agrees(kernel, static) if traced else None
        return {"host": host, "static": static, "kernel": kernel, "traced": traced,
                "agrees": agrees, "deciding": "", "why": "" if traced else "its agent is not "
                "running"}  # fmt: skip

    router = row("network1", "DROP", router_kernel, router_traced)
    router["router"] = "lab-router"
    if router_kernel == "DROP":
        router["deciding"] = "firewall rule deny-ping (policy lab-edge, position 1)"
    return [row("compute2", "ACCEPT", "ACCEPT"), router, row("compute1", None, None)]


def _summary(hops: list[dict[str, Any]]) -> tuple[str, tuple[Any, ...]]:
    combined = trace_verdict.combined_verdict([hop for hop in hops if hop["traced"]])
    request = _hop_request("r3")
    return trace_summary.hop_summary(request, hops, combined, 2, False, ""), combined


def test_a_router_drop_seen_in_its_namespace_is_the_kernel_verdict_and_it_agrees():
    summary, (verdict, agrees, decider) = _summary(_rows("DROP", True))
    assert verdict == "DROP" and agrees is True and decider["host"] == "network1"
    assert summary.startswith(
        "kernel DROP at network1 (firewall rule deny-ping (policy lab-edge, position 1)) agrees "
        "with the static verdict DROP; hop network1 decided"
    )


def test_an_untraced_router_rests_on_its_static_drop_consistent_with_what_the_hosts_saw():
    summary, (verdict, agrees, _decider) = _summary(_rows(None, False))
    assert verdict == "ACCEPT" and agrees is True  # what the traced hosts did: let it out
    assert (
        "router lab-router on network1 rests on the static verdict (its agent is not running)"
        in (summary)
    )
    assert (
        "the packet left host compute2 towards router lab-router and was not seen arriving "
        "beyond it, consistent with the router's drop" in summary
    )
    assert "contradicts" not in summary
