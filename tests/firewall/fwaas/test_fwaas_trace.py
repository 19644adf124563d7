"""The router tracer's verdicts and words on the worked example (tests/firewall/fwaas/example)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sgweb.firewall.fwaas.trace import ACCEPT, DROP, REJECTED, trace_router
from sgweb.firewall.trace.packet import Packet, TraceError
from tests.firewall.fwaas.example import APP_GROUP_OBJ, STATE, WEB_GROUP_OBJ


def tcp(src: str, dst: str, dport: int, **kw: object) -> Packet:
    return Packet(src=src, dst=dst, protocol="tcp", sport=40000, dport=dport, **kw)  # type: ignore[arg-type]


def test_a_deny_rule_is_named_with_its_policy_position_router_and_interface() -> None:
    trace = trace_router(STATE, tcp("192.0.2.5", "198.51.100.10", 5432))
    assert trace.verdict == DROP
    assert trace.words.startswith(
        "dropped by firewall rule deny-db (policy prod-egress, position 3) "
        "on router r1 interface to net-web"
    )
    assert trace.deciding is not None and trace.deciding.rule is not None
    assert trace.deciding.rule.rule_id == "r-deny-db"


def test_the_first_matching_rule_wins() -> None:
    trace = trace_router(STATE, tcp("192.0.2.5", "198.51.100.11", 5432))
    assert trace.verdict == ACCEPT
    assert trace.deciding is not None and trace.deciding.rule is not None
    assert trace.deciding.rule.position == 6


def test_reject_and_the_default_drop() -> None:
    assert trace_router(STATE, tcp("192.0.2.5", "198.51.100.11", 22)).verdict == REJECTED
    dropped = trace_router(STATE, tcp("192.0.2.5", "198.51.100.11", 8080))
    assert dropped.verdict == DROP
    assert "default drop of firewall group web-fw" in dropped.words


def test_the_group_the_kernel_never_reaches_is_named() -> None:
    trace = trace_router(STATE, tcp("192.0.2.5", "198.51.100.11", 5432))
    assert trace.not_consulted == ("app-fw",)


def test_established_and_invalid_packets() -> None:
    assert (
        trace_router(STATE, tcp("198.51.100.11", "192.0.2.5", 80, ct_state="ESTABLISHED")).verdict
        == ACCEPT
    )
    assert (
        trace_router(STATE, tcp("192.0.2.5", "198.51.100.11", 80, ct_state="INVALID")).verdict
        == DROP
    )


def test_a_group_that_is_down_drops_everything() -> None:
    state = replace(
        STATE, firewall_groups=(APP_GROUP_OBJ, replace(WEB_GROUP_OBJ, admin_state_up=False))
    )
    trace = trace_router(state, Packet(src="192.0.2.5", dst="198.51.100.11", protocol="icmp"))
    assert trace.verdict == DROP and "administratively down" in trace.words


def test_ipv6_uses_only_ipv6_rules() -> None:
    ping = Packet(src="2001:db8:1::5", dst="2001:db8:2::5", protocol="ipv6-icmp")
    assert trace_router(STATE, ping).verdict == ACCEPT
    assert trace_router(STATE, tcp("2001:db8:1::5", "2001:db8:2::5", 80)).verdict == DROP


def test_without_groups_the_router_forwards() -> None:
    trace = trace_router(replace(STATE, firewall_groups=()), tcp("192.0.2.5", "198.51.100.11", 1))
    assert trace.verdict == ACCEPT and trace.deciding is None
    assert "no firewall group" in trace.words


def test_a_destination_the_router_has_no_interface_for_is_an_error() -> None:
    with pytest.raises(TraceError):
        trace_router(STATE, tcp("192.0.2.5", "203.0.113.9", 80))


def test_the_result_serialises_for_the_trace_page() -> None:
    import json

    data = trace_router(STATE, tcp("192.0.2.5", "198.51.100.10", 5432)).as_dict()
    assert json.loads(json.dumps(data))["deciding"]["rule"]["rule_name"] == "deny-db"
    assert data["verdict"] == DROP and data["steps"][0]["direction"] == "egress"
