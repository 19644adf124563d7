"""The tracer's conntrack, without a kernel (tests/kernel/test_truth.py proves each on one)."""

from __future__ import annotations

import pytest

from sgweb.firewall.compiler import compile_host
from sgweb.firewall.model import HostState, Port, SecurityGroup, SecurityGroupRule
from sgweb.firewall.trace.ctstate import classify
from sgweb.firewall.trace.flow import LAYOUT_QBR, LAYOUT_SHARED, trace_flow, trace_reply
from sgweb.firewall.trace.tracer import Packet, trace

OPEN_RULES = tuple(
    SecurityGroupRule(f"{d}-{e}", d, e) for d in ("ingress", "egress") for e in ("IPv4", "IPv6")
)
STATEFUL = Port("aaaaaaaa-1111", "fa:16:3e:00:00:0a", ("192.0.2.10", "2001:db8::a"), ("open",))
STATELESS = Port("bbbbbbbb-2222", "fa:16:3e:00:00:0b", ("192.0.2.11", "2001:db8::b"), ("loose",))
STATE = HostState(
    ports=(STATEFUL, STATELESS),
    security_groups=(
        SecurityGroup("open", rules=OPEN_RULES),
        SecurityGroup("loose", stateful=False, rules=OPEN_RULES),
    ),
)
HOSTS = {"compute1": (STATE, compile_host(STATE))}


@pytest.mark.parametrize(
    ("fields", "state", "words"),
    [
        ({"protocol": "icmp", "icmp_type": 0}, "INVALID", "an unsolicited echo reply"),
        ({"protocol": "icmp", "icmp_type": 3}, "INVALID", "a destination unreachable quoting"),
        ({"protocol": "icmp", "icmp_type": 11}, "INVALID", "a time exceeded quoting"),
        ({"protocol": "icmp", "icmp_type": 8}, "NEW", None),
        ({"protocol": "icmp", "icmp_type": 13}, "NEW", None),
        ({"protocol": "ipv6-icmp", "icmp_type": 129, "family": 6}, "INVALID", "ICMPv6 echo reply"),
        ({"protocol": "ipv6-icmp", "icmp_type": 1, "family": 6}, "INVALID", "destination unr"),
        ({"protocol": "ipv6-icmp", "icmp_type": 255, "family": 6}, "INVALID", "ICMPv6 type 255"),
        ({"protocol": "ipv6-icmp", "icmp_type": 135, "family": 6}, "UNTRACKED", "untracked"),
        ({"protocol": "ipv6-icmp", "icmp_type": 128, "family": 6}, "NEW", None),
        ({"protocol": "udplite", "dport": 53}, "INVALID", "UDP-Lite"),
        ({"protocol": "tcp", "dport": 22, "tcp_flags": "SYN,ACK"}, "INVALID", "TCP SYN-ACK"),
        ({"protocol": "tcp", "dport": 22, "tcp_flags": "ACK"}, "NEW", None),
        ({"protocol": "tcp", "dport": 22}, "NEW", None),
        ({"protocol": "253"}, "NEW", None),
        ({"protocol": "sctp", "dport": 5000}, "NEW", None),
        ({"protocol": "sctp", "dport": 5000, "sctp_chunk": "init-ack"}, "INVALID", "SCTP INIT-ACK"),
        ({"protocol": "dccp", "dport": 5000}, "NEW", None),
        ({"protocol": "gre"}, "NEW", None),
    ],
)
def test_conntrack_classifies_packets_of_no_connection_as_the_kernel_does(
    fields: dict[str, object], state: str, words: str | None
) -> None:
    got, reason = classify(Packet(**fields), "NEW")  # type: ignore[arg-type]
    assert got == state
    assert (reason is None) == (words is None)
    if words is not None:
        assert reason is not None and words in reason


def test_udplite_is_invalid_even_inside_a_connection_but_not_when_sent_by_the_host() -> None:
    assert classify(Packet(protocol="udplite", ct_state="ESTABLISHED"), "ESTABLISHED")[0] == (
        "INVALID"
    )
    assert classify(Packet(protocol="udplite", hook="OUTPUT"), "NEW")[0] == "NEW"


def test_an_unsolicited_echo_reply_is_dropped_as_invalid_with_the_reason() -> None:
    flow = trace_flow(HOSTS, "198.51.100.7", STATEFUL.id, protocol="icmp", icmp_type=0)
    assert flow.verdict == "DROP"
    assert "conntrack treats an unsolicited echo reply as INVALID" in flow.text


def test_icmpv6_type_255_is_literal_but_icmp_type_255_is_any_type() -> None:
    rules = (
        SecurityGroupRule("v6", "ingress", "IPv6", "ipv6-icmp", 255),
        SecurityGroupRule("v4", "ingress", "IPv4", "icmp", 255),
    )
    state = HostState(ports=(STATEFUL,), security_groups=(SecurityGroup("open", rules=rules),))
    hosts = {"compute1": (state, compile_host(state))}
    echo6 = trace_flow(hosts, "2001:db8:1::7", STATEFUL.id, protocol="ipv6-icmp")
    echo4 = trace_flow(hosts, "198.51.100.7", STATEFUL.id, protocol="icmp")
    assert (echo6.verdict, echo4.verdict) == ("DROP", "ACCEPT")
    assert echo6.hops[0].explanation is not None
    assert echo6.hops[0].explanation.reason == "default-drop"


@pytest.mark.parametrize(("layout", "reply"), ((LAYOUT_SHARED, "DROP"), (LAYOUT_QBR, "ACCEPT")))
def test_the_reply_to_a_stateless_ports_request_is_established_only_where_it_was_tracked(
    layout: str, reply: str
) -> None:
    for protocol, extra in (("icmp", {}), ("tcp", {"dport": 22}), ("sctp", {"dport": 5000})):
        flow = trace_flow(
            HOSTS, STATELESS.id, STATEFUL.id, protocol=protocol, layout=layout, reply=True, **extra
        )  # type: ignore[arg-type]
        assert (flow.verdict, flow.reply_verdict) == ("ACCEPT", reply), flow.text
        if reply == "DROP":
            assert "reply: dropped at port" in flow.text and "as INVALID by conntrack" in flow.text


def test_the_command_lines_reply_is_not_established_after_an_untracked_request() -> None:
    compiled = HOSTS["compute1"][1]
    request = trace(
        compiled,
        Packet(
            src="192.0.2.11",
            dst="192.0.2.10",
            protocol="icmp",
            src_mac=STATELESS.mac_address,
            physdev_in="tapbbbbbbbb-22",
            physdev_out="tapaaaaaaaa-11",  # one shared bridge: a single traversal
        ),
    )
    assert request.notrack and request.verdict == "ACCEPT"
    answer = trace_reply(compiled, request)
    assert (answer.ct_state, answer.verdict) == ("INVALID", "DROP")


def test_an_sctp_init_is_answered_by_an_init_ack_which_only_its_association_lets_back() -> None:
    flow = trace_flow(HOSTS, "198.51.100.7", STATEFUL.id, protocol="sctp", dport=5000, reply=True)
    assert (flow.verdict, flow.reply_verdict) == ("ACCEPT", "ACCEPT"), flow.text
    unsolicited = trace_flow(
        HOSTS, STATELESS.id, STATEFUL.id, protocol="sctp", dport=5000, layout=LAYOUT_SHARED,
        reply=True,
    )  # fmt: skip
    assert "conntrack treats an SCTP INIT-ACK that belongs to no association" in unsolicited.text
