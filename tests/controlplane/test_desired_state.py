from django.db import connection
from django.test.utils import CaptureQueriesContext

from sgweb.firewall import validate_host_state
from sgweb.hostsync.desired_state import host_state
from sgweb.networks import actions as net_actions
from sgweb.security import actions
from tests.controlplane.factories import group, network_with_subnet, port


def build_host(adam, alice, project_a, ports: int):
    web = group(alice, project_a, "web")
    db = group(alice, project_a, "db")
    actions.create_security_group_rule(
        alice, db, direction="ingress", protocol="tcp", port_range_min=5432, port_range_max=5432,
        remote_group_id=str(web.id),
    )  # fmt: skip
    network, _ = network_with_subnet(alice, project_a)
    for index in range(ports):
        port(
            adam, project_a, network, host="compute1", name=f"p{index}",
            security_groups=[str(db.id), str(web.id)],
            allowed_address_pairs=[{"ip_address": f"198.51.100.{index + 1}"}],
        )  # fmt: skip
    return web, db


def test_host_state_carries_ports_groups_and_remote_group_members(adam, alice, project_a):
    web, db = build_host(adam, alice, project_a, 2)
    state = host_state("compute1")
    assert len(state.ports) == 2
    first = state.ports[0]
    assert first.security_groups == (str(db.id), str(web.id))
    assert first.device == "tap" + first.id[:11]
    assert first.dhcp_servers == ("192.0.2.2",)
    assert first.mac_address.startswith("fa:16:3e:")
    assert {g.id for g in state.security_groups} == {str(web.id), str(db.id)}
    members = dict(state.remote_group_members)
    assert set(members[str(web.id)]) == {
        *[ip for p in state.ports for ip in p.fixed_ips],
        "198.51.100.1",
        "198.51.100.2",
    }
    assert state.chain_prefix == "neutron-openvswi"
    validate_host_state(state)  # the compiler accepts what the control plane produces


def test_a_remote_group_used_by_no_port_on_the_host_is_still_described(adam, alice, project_a):
    web = group(alice, project_a, "web")
    db = group(alice, project_a, "db")
    actions.create_security_group_rule(alice, db, direction="ingress", remote_group_id=str(web.id))
    network, _ = network_with_subnet(alice, project_a)
    port(adam, project_a, network, host="compute1", security_groups=[str(db.id)])
    member = port(adam, project_a, network, host="compute2", security_groups=[str(web.id)])
    state = host_state("compute1")
    assert state.group(str(web.id)) is not None
    assert dict(state.remote_group_members)[str(web.id)] == (member.fixed_ips.get().ip_address,)


def test_port_without_port_security_is_passed_on_without_groups(adam, alice, project_a):
    network, _ = network_with_subnet(alice, project_a)
    port(adam, project_a, network, host="compute1", port_security_enabled=False)
    (only,) = host_state("compute1").ports
    assert only.port_security_enabled is False
    assert only.security_groups == ()


def queries_for(host: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        host_state(host)
    return len(captured.captured_queries)


def test_desired_state_query_count_does_not_grow_with_the_number_of_ports(adam, alice, project_a):
    build_host(adam, alice, project_a, 2)
    few = queries_for("compute1")
    network, _ = network_with_subnet(alice, project_a, "203.0.113.0/24", "more")
    for index in range(8):
        port(adam, project_a, network, host="compute1", name=f"more{index}")
    assert queries_for("compute1") == few
    assert few <= 11  # 10, and one for the packet logs covering the host's ports


def test_each_port_keeps_its_own_conntrack_zone_when_another_port_arrives(adam, alice, project_a):
    first, _ = network_with_subnet(alice, project_a, "192.0.2.0/24", "first")
    second, _ = network_with_subnet(alice, project_a, "198.51.100.0/24", "second")
    one = port(adam, project_a, second, host="compute1")
    before = {p.id: p.conntrack_zone for p in host_state("compute1").ports}
    two = port(adam, project_a, first, host="compute1")
    after = {p.id: p.conntrack_zone for p in host_state("compute1").ports}
    assert before == {str(one.id): 4097}
    assert after == {str(one.id): 4097, str(two.id): 4098}


def test_a_deleted_ports_zone_is_not_handed_out_again_while_higher_ones_are_free(
    adam, alice, project_a
):
    network, _ = network_with_subnet(alice, project_a, "192.0.2.0/24", "net")
    ports = [port(adam, project_a, network, host="compute1") for _ in range(3)]
    net_actions.delete_port(adam, ports[1])
    newer = port(adam, project_a, network, host="compute1")
    assert [p.conntrack_zone for p in (ports[0], ports[2], newer)] == [4097, 4099, 4100]


def test_the_firewall_compat_setting_travels_in_the_desired_state(adam, alice, project_a, settings):
    network, _ = network_with_subnet(alice, project_a, "192.0.2.0/24", "net")
    port(adam, project_a, network, host="compute1")
    assert host_state("compute1").compat == "neutron"
    settings.SGWEB_FIREWALL_COMPAT = "article"
    assert host_state("compute1").compat == "article"
