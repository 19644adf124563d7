"""A network node's desired router state, built from the database: the FWaaS compiler's input
(`sgweb.firewall.fwaas.model.NetworkNodeState`)."""

from __future__ import annotations

from sgweb.firewall.fwaas import model
from sgweb.fwaas import actions
from sgweb.fwaas.desired_state import network_node_state
from sgweb.networks.actions import create_host
from sgweb.routers import actions as router_actions
from tests.controlplane.factories import network_with_subnet
from tests.controlplane.fwaas_factories import routed_pair


def test_a_network_node_state_holds_its_routers_interfaces_and_the_groups_on_them_in_order(
    adam, alice, project_a
):
    pair = routed_pair(adam, alice, project_a)
    allow = actions.create_rule(alice, project_a, name="allow-ssh", protocol="tcp",
                                destination_port="22", action="allow")  # fmt: skip
    deny = actions.create_rule(alice, project_a, name="deny-db", protocol="tcp",
                               destination_port="5432", destination_ip_address="198.51.100.0/24",
                               enabled=False)  # fmt: skip
    policy = actions.create_policy(alice, project_a, name="prod-egress", firewall_rules=[deny])
    actions.insert_rule(alice, policy, allow)  # on top
    group = actions.create_group(alice, project_a, name="app-edge", egress_policy=policy,
                                 ports=[pair.app_port])  # fmt: skip
    # Another node's router is not this node's business.
    create_host(adam, name="network2", network_node=True)
    elsewhere = router_actions.create_router(alice, project_a, name="r2")
    assert elsewhere.host.name == "network2"

    state = network_node_state("network1")

    interfaces = {
        str(pair.web_port.id): model.RouterInterface(
            port_id=str(pair.web_port.id), network_id=str(pair.web.id),
            subnet_id=str(pair.web_subnet.id), cidr="192.0.2.0/24", ip_address="192.0.2.1",
            mac_address=pair.web_port.mac_address, network_name="net-web",
        ),
        str(pair.app_port.id): model.RouterInterface(
            port_id=str(pair.app_port.id), network_id=str(pair.app.id),
            subnet_id=str(pair.app_subnet.id), cidr="198.51.100.0/24", ip_address="198.51.100.1",
            mac_address=pair.app_port.mac_address, network_name="net-app",
        ),
    }  # fmt: skip
    assert state == model.NetworkNodeState(
        host="network1",
        routers=(
            model.RouterState(
                router=model.Router(
                    id=str(pair.router.id),
                    name="r1",
                    interfaces=tuple(interfaces[key] for key in sorted(interfaces)),
                ),
                firewall_groups=(
                    model.FirewallGroup(
                        id=str(group.id),
                        name="app-edge",
                        egress_policy=model.FirewallPolicy(
                            id=str(policy.id),
                            name="prod-egress",
                            rules=(
                                model.FirewallRule(
                                    id=str(allow.id),
                                    name="allow-ssh",
                                    protocol="tcp",
                                    destination_port="22",
                                    action="allow",
                                ),
                                model.FirewallRule(
                                    id=str(deny.id),
                                    name="deny-db",
                                    protocol="tcp",
                                    destination_port="5432",
                                    destination_ip_address="198.51.100.0/24",
                                    action="deny",
                                    enabled=False,
                                ),
                            ),
                        ),
                        ports=(str(pair.app_port.id),),
                    ),
                ),
            ),
        ),
    )
    assert state.routers[0].router.interfaces[0].device.startswith("qr-")
    assert network_node_state("network2").routers[0].router.interfaces == ()


def test_a_router_that_is_down_is_left_out_and_a_node_without_routers_is_empty(
    adam, alice, project_a
):
    pair = routed_pair(adam, alice, project_a)
    router_actions.update_router(alice, pair.router, admin_state_up=False)
    assert network_node_state(pair.node) == model.NetworkNodeState(host="network1")
    network_with_subnet(alice, project_a, "203.0.113.0/24", "spare")
    assert network_node_state("nowhere") == model.NetworkNodeState(host="nowhere")


def test_the_installed_sender_hears_of_a_node_after_commit_and_can_build_its_state(
    adam, alice, project_a, monkeypatch, django_capture_on_commit_callbacks
):
    from sgweb import dispatch

    pair = routed_pair(adam, alice, project_a)
    built: list[model.NetworkNodeState] = []

    def sender(hosts, reason):
        built.extend(network_node_state(host) for host in sorted(hosts))

    monkeypatch.setattr(dispatch, "_network_node_sender", sender)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        actions.create_group(alice, project_a, name="edge", ports=[pair.web_port])
        assert built == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()
    assert [state.host for state in built] == ["network1"]
    assert built[0].routers[0].firewall_groups[0].name == "edge"

    def broken(hosts, reason):
        raise ConnectionError("broker down")

    monkeypatch.setattr(dispatch, "_network_node_sender", broken)
    with django_capture_on_commit_callbacks(execute=True):
        actions.create_group(alice, project_a, name="edge2", ports=[pair.app_port])
    assert project_a.firewall_groups.count() == 2  # the committed change stands
