"""Traces between two networks go through the router joining them: source egress groups, the
router's firewall groups, destination ingress groups, one path with the deciding layer named."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from sgweb.fwaas import actions as fwaas_actions
from sgweb.networks.models import Port
from sgweb.security import actions as security_actions
from sgweb.tenancy.errors import Invalid
from sgweb.traces import actions, proof
from sgweb.traces.models import Trace
from tests.controlplane import factories
from tests.controlplane.fwaas_factories import RoutedPair, routed_pair


@pytest.fixture
def routed(adam, alice, project_a, monkeypatch) -> tuple[RoutedPair, Port, Port]:
    """web-vm on net-web (compute1) and app-vm on net-app (compute2) behind router r1, whose
    net-web interface has firewall group web-fw: egress policy prod-egress = allow-icmp,
    deny-db (tcp 5432). The security groups let out anything and in icmp and tcp 5432/80."""
    monkeypatch.setattr(proof, "agent_alive", lambda host: False)
    pair = routed_pair(adam, alice, project_a)
    group = factories.group(alice, project_a, "vms")
    for protocol, port in (("icmp", None), ("tcp", 5432), ("tcp", 80)):
        security_actions.create_security_group_rule(
            alice, group, direction="ingress", protocol=protocol, port_range_min=port,
            port_range_max=port, remote_ip_prefix="0.0.0.0/0",
        )  # fmt: skip
    web_vm = factories.port(adam, project_a, pair.web, name="web-vm", host="compute1",
                            security_groups=[str(group.id)])  # fmt: skip
    app_vm = factories.port(adam, project_a, pair.app, name="app-vm", host="compute2",
                            security_groups=[str(group.id)])  # fmt: skip
    icmp = fwaas_actions.create_rule(alice, project_a, name="allow-icmp", protocol="icmp",
                                     action="allow")  # fmt: skip
    deny = fwaas_actions.create_rule(alice, project_a, name="deny-db", protocol="tcp",
                                     destination_port="5432", action="deny")  # fmt: skip
    policy = fwaas_actions.create_policy(alice, project_a, name="prod-egress",
                                         firewall_rules=[icmp, deny])  # fmt: skip
    fwaas_actions.create_group(alice, project_a, name="web-fw", egress_policy=policy,
                               ports=[pair.web_port])  # fmt: skip
    return pair, web_vm, app_vm


def test_a_ping_across_the_router_is_allowed_by_all_three_layers(routed, alice):

    trace = actions.start_trace(alice, source="web-vm", destination="app-vm", protocol="icmp")
    static = trace.static_result
    assert static["verdict"] == "ACCEPT"
    path = static["path"]
    assert path["router_name"] == "r1" and path["deciding"] is None
    assert [(layer["kind"], layer["verdict"]) for layer in path["layers"]] == [
        ("source-egress", "ACCEPT"),
        ("router", "ACCEPT"),
        ("destination-ingress", "ACCEPT"),
    ]
    assert (
        "allowed by firewall rule allow-icmp (policy prod-egress, position 1)"
        in (static["explanation"])
    )
    assert [hop["host"] for hop in static["request"]["hops"]] == ["compute1", "compute2"]


def test_a_deny_rule_on_the_router_is_named_with_its_policy_position_router_and_interface(
    routed, alice
):
    trace = actions.start_trace(alice, source="web-vm", destination="app-vm", protocol="tcp",
                                port=5432)  # fmt: skip
    static = trace.static_result
    assert static["verdict"] == "DROP" and static["reason"] == "firewall-rule"
    assert static["explanation"] == (
        "dropped by firewall rule deny-db (policy prod-egress, position 2) on router r1 "
        "interface to net-web"
    )
    assert static["path"]["deciding"] == "router"
    assert [hop["reached"] for hop in static["request"]["hops"]] == [True, False]


def test_a_policy_without_a_matching_rule_drops_by_its_default(routed, alice):
    trace = actions.start_trace(alice, source="web-vm", destination="app-vm", protocol="tcp",
                                port=80)  # fmt: skip
    assert trace.static_result["reason"] == "firewall-default"
    assert trace.static_result["explanation"].startswith(
        "dropped by the default drop of firewall group web-fw: no rule of egress policy "
        "prod-egress matched on router r1"
    )


def test_without_a_router_between_the_networks_the_trace_says_no_route_and_stores_nothing(
    routed, adam, alice, project_a
):

    lonely, _subnet = factories.network_with_subnet(alice, project_a, "203.0.113.0/24", "net-db")
    factories.port(adam, project_a, lonely, name="db-vm", host="compute2")
    with pytest.raises(Invalid) as error:
        actions.start_trace(alice, source="web-vm", destination="db-vm", protocol="icmp")
    assert "no route between net-web and net-db" in str(error.value.errors)
    assert not Trace.objects.exists()


def test_the_api_answers_with_the_three_layers(routed, alice):
    client = APIClient()
    client.force_authenticate(alice)
    response = client.post(
        "/api/traces",
        {"source": "web-vm", "destination": "app-vm", "protocol": "tcp", "port": 5432},
        format="json",
    )
    assert response.status_code == 201, response.content
    layers = response.json()["trace"]["static"]["path"]["layers"]
    assert [layer["reached"] for layer in layers] == [True, True, False]
    assert layers[1]["router"]["deciding"]["rule"]["rule_name"] == "deny-db"


def test_the_trace_page_shows_the_three_layers_as_one_path_with_the_deciding_rule(routed, alice):
    from django.test import Client

    trace = actions.start_trace(alice, source="web-vm", destination="app-vm", protocol="tcp",
                                port=5432)  # fmt: skip
    client = Client()
    client.force_login(alice)
    page = client.get(f"/traces/{trace.pk}")
    assert page.status_code == 200
    html = page.content.decode()
    assert "The path through router r1" in html
    layers = html.split('data-layer="')[1:]
    assert [layer.split('"', 1)[0] for layer in layers] == [
        "source-egress",
        "router",
        "destination-ingress",
    ]
    assert "deciding layer" in layers[1] and "deciding layer" not in layers[0]
    assert "rule deny-db (policy prod-egress, position 2)" in layers[1]
    assert "not reached: dropped before" in layers[2]
    assert "dropped by firewall rule deny-db (policy prod-egress, position 2) on router r1" in html


def test_a_trace_within_one_network_has_no_router_path_on_its_page(world, alice, monkeypatch):
    from django.test import Client

    monkeypatch.setattr(proof, "agent_alive", lambda host: False)
    trace = actions.start_trace(alice, source="web1", destination="db1", protocol="icmp")
    assert "path" not in trace.static_result
    client = Client()
    client.force_login(alice)
    html = client.get(f"/traces/{trace.pk}").content.decode()
    assert "data-trace-path" not in html


def test_an_allowed_ping_across_the_router_shows_its_reply_coming_back_on_the_page(routed, alice):
    from django.test import Client

    trace = actions.start_trace(alice, source="web-vm", destination="app-vm", protocol="icmp")
    assert trace.static_result["reply"]["verdict"] == "ACCEPT"
    assert trace.static_result["path"]["reply_verdict"] == "ACCEPT"
    client = Client()
    client.force_login(alice)
    html = client.get(f"/traces/{trace.pk}").content.decode()
    assert "The reply, back along the path" in html
    legs = [chunk.split('"', 1)[0] for chunk in html.split('data-leg="')[1:]]
    assert legs == ["request"] * 3 + ["reply"] * 3
    assert 'data-layer="source-ingress" data-leg="reply"' in html


def test_a_router_that_is_down_forwards_nothing_and_the_trace_says_so(routed, alice):
    from sgweb.routers import actions as router_actions

    pair, _web_vm, _app_vm = routed
    router_actions.update_router(alice, pair.router, admin_state_up=False)
    with pytest.raises(Invalid) as error:
        actions.start_trace(alice, source="web-vm", destination="app-vm", protocol="icmp")
    assert "router r1 is administratively down" in str(error.value.errors)


def _planned_hops(trace: Trace, web_vm: Port, app_vm: Port, monkeypatch) -> list[dict]:
    monkeypatch.setattr(proof, "agent_alive", lambda host: True)
    request, refusal = proof.plan_proof(trace, web_vm, app_vm, "network1")
    assert refusal is None and request is not None
    return request.hops


def test_the_proof_of_a_routed_trace_has_the_router_as_a_hop_between_the_two_hosts(
    routed, alice, monkeypatch
):
    pair, web_vm, app_vm = routed
    trace = actions.start_trace(alice, source="web-vm", destination="app-vm", protocol="tcp",
                                port=5432)  # fmt: skip
    hops = _planned_hops(trace, web_vm, app_vm, monkeypatch)
    assert [(hop["host"], hop["static"]) for hop in hops] == [
        ("compute1", "ACCEPT"),
        ("network1", "DROP"),  # the router's deny-db decides: its node's kernel must say so
        ("compute2", None),
    ]
    assert hops[1]["router_id"] == str(pair.router.pk) and hops[1]["router"] == "r1"
    assert trace.static_result["path"]["router_host"] == "network1"  # the page's packet order
    assert all(hop["traced"] for hop in hops)


def test_an_allowed_routed_ping_is_proved_on_both_hosts_and_the_router_each_way(
    routed, alice, monkeypatch
):
    _pair, web_vm, app_vm = routed
    trace = actions.start_trace(alice, source="web-vm", destination="app-vm", protocol="icmp")
    hops = _planned_hops(trace, web_vm, app_vm, monkeypatch)
    assert [(hop["host"], hop["static"]) for hop in hops] == [
        ("compute1", "ACCEPT"),
        ("network1", "ACCEPT"),
        ("compute2", "ACCEPT"),
    ]


def test_a_routed_trace_between_ports_of_one_host_still_has_the_router_hop(
    routed, adam, alice, project_a, monkeypatch
):
    """Both VMs on compute1: the packet leaves the host, crosses the router and comes back; one
    host's trace alone would see it leave and call that the kernel's ACCEPT."""
    pair, web_vm, _app_vm = routed
    groups = [str(group.pk) for group in web_vm.security_groups.all()]
    near = factories.port(adam, project_a, pair.app, name="app-near", host="compute1",
                          security_groups=groups)  # fmt: skip
    trace = actions.start_trace(alice, source="web-vm", destination="app-near", protocol="tcp",
                                port=5432)  # fmt: skip
    hops = _planned_hops(trace, web_vm, near, monkeypatch)
    assert [(hop["host"], hop["static"]) for hop in hops] == [
        ("compute1", "ACCEPT"),
        ("network1", "DROP"),
    ]


def test_a_router_whose_node_has_no_agent_is_an_untraced_hop(routed, alice, monkeypatch):
    _pair, web_vm, app_vm = routed
    trace = actions.start_trace(alice, source="web-vm", destination="app-vm", protocol="tcp",
                                port=5432)  # fmt: skip
    monkeypatch.setattr(proof, "agent_alive", lambda host: host != "network1")
    request, _refusal = proof.plan_proof(trace, web_vm, app_vm, "network1")
    assert request is not None
    router = request.hops[1]
    assert not router["traced"] and router["why"] == "its agent is not running"
    assert [hop.host for hop in proof.hop_requests(request)] == ["compute2"]
