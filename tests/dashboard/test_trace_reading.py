"""A kept trace reads along the packet's path: kernel packets in the order of the hosts the
packet crosses (not by host name), each rule in the static walk's words, one sentence for the
result, and no "proven on … by —" for a host without an agent."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sgweb.dashboard.tracepaint import (
    HopView,
    StaticView,
    host_order,
    packet_views,
    result_sentence,
)

RULE = "0f0e0d0c-0000-4000-8000-000000000001"


def packet(host: str, index: int = 0, direction: str = "request", verdict: str = "ACCEPT") -> Any:
    return {
        "type": "trace-packet",
        "host": host,
        "index": index,
        "direction": direction,
        "verdict": verdict,
        "steps": [
            {
                "table": "filter",
                "chain": "neutron-openvswi-i1",
                "position": 4,
                "event": "rule",
                "verdict": "RETURN",
                "label": "agent words",
                "rule_id": RULE,
            },
        ],
    }


def static_through(*hosts: str) -> StaticView:
    hops = [HopView(host, "request", True, "ACCEPT", "") for host in hosts]
    return StaticView("ACCEPT", "", "", hops, [], None)


def rules() -> dict[str, Any]:
    rule = SimpleNamespace(
        pk=RULE, summary="tcp/22 from 203.0.113.0/24", group_name="web", security_group_id="g"
    )
    return {RULE: rule}


def test_kernel_packets_follow_the_path_not_the_host_names() -> None:
    order = host_order(static_through("host2", "host1"))
    events = [packet("host1"), packet("host2"), packet("host2", 0, "reply")]
    events += [packet("host1", 0, "reply")]
    views = packet_views(events, rules(), order)
    # The reply comes back the other way: it leaves host1 (the destination's) first.
    assert [(p.direction, p.host) for p in views] == [
        ("request", "host2"),
        ("request", "host1"),
        ("reply", "host1"),
        ("reply", "host2"),
    ]


def test_a_routed_traces_router_packets_come_between_the_source_and_destination_hosts() -> None:
    order = host_order(static_through("host2", "host1"), router_host="network1")
    assert order == ["host2", "network1", "host1"]
    events = [packet("host1"), {**packet("network1"), "router": "r1"}, packet("host2")]
    views = packet_views(events, rules(), order)
    assert [(p.host, p.router) for p in views] == [
        ("host2", ""),
        ("network1", "r1"),  # the page names the router whose namespace the node traced
        ("host1", ""),
    ]


def test_a_rule_is_worded_as_the_static_walk_words_it() -> None:
    views = packet_views([packet("host1")], rules(), ["host1"])
    assert views[0].steps[0].label == "allow tcp/22 from 203.0.113.0/24 (rule 0f0e0d0c of web)"
    assert views[0].steps[0].group_name == "web"


def test_the_result_is_one_sentence() -> None:
    views = packet_views([packet("host1", verdict="ACCEPT")], rules(), ["host1"])
    result = {"type": "trace-result", "status": "done", "kernel_verdict": "ACCEPT",
              "static_verdict": "ACCEPT", "agrees": True, "probe_ok": True,
              "summary": "kernel ACCEPT (x) agrees with the static verdict ACCEPT"}  # fmt: skip
    sentence = result_sentence(result, views)
    assert sentence == (
        "The kernel agreed: host1 allowed the packet at "
        "“allow tcp/22 from 203.0.113.0/24 (rule 0f0e0d0c of web)”; 1 packet traced, "
        "the probe was answered."
    )


def test_a_trace_without_an_agent_says_it_was_not_proven() -> None:
    result = {"type": "trace-result", "status": "failed", "kernel_verdict": None, "agrees": None,
              "summary": "no proof: the agent of host compute1 is not running"}  # fmt: skip
    assert result_sentence(result, []) == (
        "Not proven in the kernel: the agent of host compute1 is not running; "
        "the verdict above is the rules' alone."
    )
