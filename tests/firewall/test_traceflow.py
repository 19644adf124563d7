"""Flows across hosts: which traversals a packet makes in each bridge layout, and replies."""

from __future__ import annotations

import json

import pytest

from sgweb.firewall.trace.flow import LAYOUT_SHARED, HostTarget, trace_flow
from sgweb.firewall.trace.tracer import TraceError
from tests.firewall.test_explain import STATE
from tests.firewall.test_tracer import DB, HOST, OPEN, WEB

HOSTS = [HostTarget("compute1", STATE, HOST)]


def test_with_qbr_bridges_two_ports_on_one_host_make_two_traversals():
    flow = trace_flow(HOSTS, OPEN.id, "web-1", protocol="tcp", dport=8000)
    assert flow.verdict == "ACCEPT"
    assert [(h.packet.physdev_in, h.packet.physdev_out) for h in flow.hops] == [
        (OPEN.tap, "qvb" + OPEN.id[:11]),
        ("qvb" + WEB.id[:11], WEB.tap),
    ]
    assert flow.hops[0].explanation.reason == "port-security-off"
    assert flow.hops[1].explanation.rule_id == "r-range"


def test_on_a_shared_bridge_two_ports_on_one_host_meet_in_one_traversal():
    flow = trace_flow(HOSTS, OPEN.id, WEB.ip, protocol="tcp", dport=8000, layout=LAYOUT_SHARED)
    assert len(flow.hops) == 1
    assert (flow.hops[0].packet.physdev_in, flow.hops[0].packet.physdev_out) == (OPEN.tap, WEB.tap)
    assert flow.verdict == "ACCEPT"


def test_a_drop_at_the_source_leaves_the_destination_hop_unreached():
    flow = trace_flow(HOSTS, WEB.id, DB.id, protocol="tcp", dport=5432, reply=True)
    assert flow.verdict == "DROP"
    assert flow.hops[0].explanation.reason == "default-drop"
    assert flow.hops[0].explanation.direction == "egress"
    assert not flow.hops[1].reached
    assert flow.reply_hops == () and flow.reply_verdict is None


def test_an_allowed_flow_from_outside_gets_its_reply_traced_as_established():
    flow = trace_flow(
        HOSTS, "198.51.100.130", "db-1", protocol="tcp", sport=40000, dport=5432, reply=True
    )
    assert flow.verdict == "ACCEPT" and len(flow.hops) == 1
    assert flow.reply_verdict == "ACCEPT"
    reply = flow.reply_hops[0]
    assert (reply.packet.sport, reply.packet.dport, reply.packet.ct_state) == (
        5432,
        40000,
        "ESTABLISHED",
    )
    assert reply.explanation.reason == "established"
    assert "reply: allowed at port db-1 egress" in flow.text


def test_ping_reply_is_an_echo_reply():
    flow = trace_flow(HOSTS, "203.0.113.9", WEB.id, protocol="icmp", reply=True)
    assert flow.verdict == "ACCEPT"
    assert flow.reply_hops[0].packet.effective_icmp_type == 0


def test_spoofed_source_address_is_dropped_by_anti_spoofing():
    flow = trace_flow(
        HOSTS, WEB.id, "203.0.113.1", protocol="tcp", dport=80, src_address="203.0.113.9"
    )
    assert flow.verdict == "DROP"
    assert flow.hops[0].explanation.reason == "anti-spoofing-ip"


def test_unknown_endpoints_are_refused():
    with pytest.raises(TraceError):
        trace_flow(HOSTS, "no-such-port", WEB.id)
    flow = trace_flow(HOSTS, "203.0.113.1", "198.51.100.1")
    assert flow.hops == () and flow.text.startswith("not filtered")


def test_flow_between_ports_on_two_compiled_hosts_crosses_both():
    from sgweb.firewall.compiler import compile_host
    from sgweb.firewall.scenario import load_scenario

    group = "11111111-aaaa-4bbb-8ccc-000000000001"
    document = {
        "security_groups": [
            {
                "id": group,
                "name": "app",
                "rules": [
                    {"id": "r-out", "direction": "egress", "ethertype": "IPv4"},
                    {
                        "id": "r-app",
                        "direction": "ingress",
                        "ethertype": "IPv4",
                        "protocol": "tcp",
                        "port_range_min": 8443,
                        "port_range_max": 8443,
                        "remote_group_id": group,
                    },
                ],
            }
        ],
        "ports": [
            {
                "id": "aaaaaaaa-1111-4222-8333-444444444444",
                "host": "compute1",
                "name": "a",
                "mac_address": "fa:16:3e:00:00:0a",
                "fixed_ips": ["192.0.2.10"],
                "security_groups": [group],
            },
            {
                "id": "bbbbbbbb-1111-4222-8333-444444444444",
                "host": "compute2",
                "name": "b",
                "mac_address": "fa:16:3e:00:00:0b",
                "fixed_ips": ["192.0.2.20"],
                "security_groups": [group],
            },
        ],
    }
    hosts = {}
    for name in ("compute1", "compute2"):
        host_state = load_scenario(document, name)
        hosts[name] = (host_state, compile_host(host_state))
    allowed = trace_flow(hosts, "a", "b", protocol="tcp", sport=50000, dport=8443, reply=True)
    assert [h.host for h in allowed.hops] == ["compute1", "compute2"]
    assert [h.explanation.rule_id for h in allowed.hops] == ["r-out", "r-app"]
    assert [h.host for h in allowed.reply_hops] == ["compute2", "compute1"]
    assert allowed.reply_verdict == "ACCEPT"
    assert {h.explanation.reason for h in allowed.reply_hops} == {"established"}
    refused = trace_flow(hosts, "a", "b", protocol="tcp", dport=22, layout=LAYOUT_SHARED)
    assert refused.verdict == "DROP"
    assert refused.hops[1].packet.physdev_in == "eth1"
    assert refused.hops[1].explanation.nearest_rule_id == "r-app"


def test_reply_to_swaps_every_side_and_answers_pings():
    from sgweb.firewall.trace.flow import reply_to
    from sgweb.firewall.trace.tracer import Packet

    ping = Packet(
        src="198.51.100.7",
        dst="192.0.2.10",
        protocol="icmp",
        src_mac="fa:16:3e:0:0:1",
        physdev_in="qvbx",
        physdev_out="tapx",
    )
    answer = reply_to(ping)
    assert (answer.src, answer.dst, answer.dst_mac) == (
        "192.0.2.10",
        "198.51.100.7",
        "fa:16:3e:0:0:1",
    )
    assert (answer.physdev_in, answer.physdev_out) == ("tapx", "qvbx")
    assert (answer.icmp_type, answer.ct_state) == (0, "ESTABLISHED")
    to_host = reply_to(Packet(src="192.0.2.10", dst="192.0.2.1", physdev_in="tapx", hook="INPUT"))
    assert (to_host.hook, to_host.physdev_in) == ("OUTPUT", None)


def test_flow_json_is_plain_data_with_every_hop():
    from sgweb.firewall.trace.serial import flow_json

    flow = trace_flow(HOSTS, OPEN.id, "web-1", protocol="tcp", dport=8000, reply=True)
    data = json.loads(json.dumps(flow_json(flow)))
    assert data["verdict"] == "ACCEPT" and data["reply_verdict"] == "ACCEPT"
    assert data["destination"]["port_name"] == "web-1"
    assert [hop["reason"] for hop in data["hops"]] == ["port-security-off", "rule"]
    assert all(hop["reached"] and hop["path"] for hop in data["hops"] + data["reply_hops"])
