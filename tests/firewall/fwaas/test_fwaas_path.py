"""The path tracer across router r1: source egress groups, the router, destination ingress groups,
with the deciding layer named in words (worked example: tests/firewall/fwaas/path_example.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sgweb.firewall.compiler import compile_host
from sgweb.firewall.fwaas.path import (
    LAYER_DESTINATION,
    LAYER_REPLY_DESTINATION,
    LAYER_ROUTER,
    LAYER_SOURCE,
    LAYERS,
    REPLY_LAYERS,
    PathTrace,
    trace_path,
)
from sgweb.firewall.trace.flow import HostTarget
from sgweb.firewall.trace.packet import TraceError
from tests.firewall.fwaas.example import STATE
from tests.firewall.fwaas.path_example import (
    APP_1,
    APP_SG,
    COMPUTE1,
    COMPUTE2,
    COMPUTE2_STATE,
    WEB_1,
)

NOT_CONSULTED = (
    "; firewall group app-fw was not consulted (the first verdict in the router's FORWARD chain "
    "is final)"
)


def web_to(destination: str, protocol: str, dport: int | None = None) -> PathTrace:
    sport = 40000 if dport is not None else None
    return trace_path(
        COMPUTE1, COMPUTE2, STATE, "web-1", destination, protocol=protocol, sport=sport, dport=dport
    )


def test_a_ping_allowed_by_all_three_layers_says_what_each_layer_did() -> None:
    path = web_to("app-1", "icmp")
    assert path.verdict == "ACCEPT" and path.deciding is None
    assert [layer.kind for layer in path.layers] == list(LAYERS)
    assert [layer.verdict for layer in path.layers] == ["ACCEPT", "ACCEPT", "ACCEPT"]
    assert path.words == (
        "allowed through all three layers: "
        "egress security groups of source port web-1 on compute1: allowed at port web-1 egress "
        "by rule r-out-icmp (icmp to any) of group web; "
        "router r1: allowed by firewall rule allow-icmp (policy prod-egress, position 1) on "
        "router r1 interface to net-web" + NOT_CONSULTED + "; "
        "ingress security groups of destination port app-1 on compute2: allowed at port app-1 "
        "ingress by rule r-in-icmp (icmp from any) of group app"
    )


def test_a_drop_by_the_source_egress_groups_leaves_the_router_and_destination_unreached() -> None:
    path = web_to("app-1", "udp", 53)
    assert (path.verdict, path.deciding) == ("DROP", LAYER_SOURCE)
    assert [layer.reached for layer in path.layers] == [True, False, False]
    assert path.words == (
        "dropped at port web-1 egress by the default drop: no rule of group web allows udp/53 "
        "to 198.51.100.11; nearest rule r-out-icmp of group web allows icmp to any (differs in "
        "protocol); decided by the egress security groups of source port web-1 on compute1, "
        "before router r1"
    )


def test_a_deny_rule_of_the_router_is_named_with_policy_and_position() -> None:
    path = web_to("app-db", "tcp", 5432)
    assert (path.verdict, path.deciding) == ("DROP", LAYER_ROUTER)
    assert path.words == (
        "dropped by firewall rule deny-db (policy prod-egress, position 3) on router r1 "
        "interface to net-web" + NOT_CONSULTED
    )
    assert not path.layer(LAYER_DESTINATION).reached


def test_the_same_port_to_another_address_passes_the_router_by_a_later_rule() -> None:
    path = web_to("app-1", "tcp", 5432)
    assert path.verdict == "ACCEPT"
    router = path.layer(LAYER_ROUTER).router
    assert router is not None and router.deciding is not None
    assert router.deciding.rule is not None and router.deciding.rule.position == 6


def test_a_drop_by_the_destination_ingress_groups_comes_after_the_router_forwarded_it() -> None:
    path = web_to("app-1", "tcp", 80)
    assert (path.verdict, path.deciding) == ("DROP", LAYER_DESTINATION)
    assert path.layer(LAYER_ROUTER).verdict == "ACCEPT"
    assert path.words == (
        "dropped at port app-1 ingress by the default drop: no rule of group app allows tcp/80 "
        "from 192.0.2.5; nearest rule r-in-pg of group app allows tcp/5432 from 192.0.2.0/24 "
        "(differs in port); decided by the ingress security groups of destination port app-1 on "
        "compute2, after router r1 forwarded it"
    )


def test_a_packet_no_rule_of_the_policy_matches_meets_the_default_drop() -> None:
    path = web_to("app-1", "tcp", 8080)
    assert (path.verdict, path.deciding) == ("DROP", LAYER_ROUTER)
    assert path.words == (
        "dropped by the default drop of firewall group web-fw: no rule of egress policy "
        "prod-egress matched on router r1 interface to net-web" + NOT_CONSULTED
    )


def test_a_reject_rule_rejects_and_the_flow_counts_it_as_not_arriving() -> None:
    path = web_to("app-1", "tcp", 22)
    assert (path.verdict, path.deciding) == ("REJECT", LAYER_ROUTER)
    assert path.words.startswith("rejected by firewall rule reject-ssh (policy prod-egress, ")
    assert path.as_flow().verdict == "DROP"


def test_frames_carry_the_router_mac_on_each_side_of_the_router() -> None:
    path = web_to("app-1", "icmp")
    source_hop = path.layer(LAYER_SOURCE).hop
    destination_hop = path.layer(LAYER_DESTINATION).hop
    assert source_hop is not None and destination_hop is not None
    assert (source_hop.packet.src_mac, source_hop.packet.dst_mac) == (
        WEB_1.mac_address,
        "fa:16:3e:00:00:01",
    )
    assert (destination_hop.packet.src_mac, destination_hop.packet.dst_mac) == (
        "fa:16:3e:00:00:02",
        APP_1.mac_address,
    )
    assert destination_hop.packet.physdev_out == "tap" + APP_1.id[:11]


def test_the_flow_and_the_json_keep_both_hosts_and_the_three_layers() -> None:
    path = web_to("app-db", "tcp", 5432)
    flow = path.as_flow()
    assert [(hop.host, hop.reached) for hop in flow.hops] == [
        ("compute1", True),
        ("compute2", False),
    ]
    data = path.as_dict()
    assert [layer["kind"] for layer in data["layers"]] == list(LAYERS)
    assert data["layers"][1]["router"]["deciding"]["rule"]["rule_name"] == "deny-db"
    assert data["deciding"] == LAYER_ROUTER and data["router_name"] == "r1"


def test_ports_on_one_subnet_do_not_cross_the_router() -> None:
    with pytest.raises(TraceError, match="one subnet"):
        trace_path(COMPUTE2, COMPUTE2, STATE, "app-1", "app-db", protocol="icmp")


def test_a_router_without_an_interface_on_the_destination_subnet_is_an_error() -> None:
    only_web = replace(STATE, router=replace(STATE.router, interfaces=STATE.router.interfaces[:1]))
    with pytest.raises(TraceError, match="no interface on the destination"):
        trace_path(COMPUTE1, COMPUTE2, only_web, "web-1", "app-1", protocol="icmp")


def test_the_reply_of_an_allowed_ping_comes_back_through_the_router_as_established() -> None:
    path = trace_path(COMPUTE1, COMPUTE2, STATE, "web-1", "app-1", protocol="icmp", reply=True)
    assert (path.verdict, path.reply_verdict, path.reply_deciding) == ("ACCEPT", "ACCEPT", None)
    assert [layer.kind for layer in path.reply_layers] == list(REPLY_LAYERS)
    router = path.reply_layers[1].router
    assert router is not None and router.words.startswith(
        "allowed as part of an established connection by firewall group"
    )
    into_source = path.reply_layers[2].hop
    assert into_source is not None and into_source.packet.effective_icmp_type == 0
    assert into_source.packet.src_mac == "fa:16:3e:00:00:01"  # the router's, on net-web
    flow = path.as_flow()
    assert flow.reply_verdict == "ACCEPT" and len(flow.reply_hops) == 2


def test_a_stateless_destination_group_drops_the_reply_and_the_words_say_so() -> None:
    stateless = replace(COMPUTE2_STATE, security_groups=(replace(APP_SG, stateful=False),))
    compute2 = HostTarget("compute2", stateless, compile_host(stateless))
    path = trace_path(COMPUTE1, compute2, STATE, "web-1", "app-1", protocol="icmp", reply=True)
    assert (path.verdict, path.reply_verdict) == ("ACCEPT", "DROP")
    assert path.reply_deciding == LAYER_REPLY_DESTINATION
    assert path.words.startswith(
        "the request passes all three layers, but its reply is dropped at port app-1 egress"
    )
    assert path.words.endswith(
        "decided by the egress security groups of destination port app-1 on compute2, "
        "before router r1"
    )
    assert not path.reply_layers[1].reached and path.as_flow().reply_verdict == "DROP"


def test_a_dropped_request_has_no_reply() -> None:
    path = trace_path(
        COMPUTE1, COMPUTE2, STATE, "web-1", "app-1", protocol="tcp", sport=1, dport=80, reply=True
    )
    assert path.reply_verdict is None and path.reply_layers == ()
