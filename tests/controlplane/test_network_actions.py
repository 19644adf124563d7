import pytest

from sgweb.audit.models import AuditEntry
from sgweb.networks import actions
from sgweb.networks.models import AllowedAddressPair, FixedIP, Network, Port, Subnet
from sgweb.tenancy.errors import Conflict, Invalid, NotFound, PermissionDenied
from tests.controlplane.factories import group, network_with_subnet, port


def state() -> tuple[int, ...]:
    return (
        Network.objects.count(),
        Subnet.objects.count(),
        Port.objects.count(),
        FixedIP.objects.count(),
        AllowedAddressPair.objects.count(),
        AuditEntry.objects.count(),
    )


@pytest.fixture
def net(alice, project_a):
    network, _ = network_with_subnet(alice, project_a)
    return network


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"mac_address": "zz:16:3e:00:00:01"}, "mac_address"),
        ({"mac_address": "01:00:5e:00:00:01"}, "mac_address"),  # multicast
        ({"allowed_address_pairs": [{"ip_address": "300.1.1.1"}]}, "allowed_address_pairs"),
        (
            {"allowed_address_pairs": [{"ip_address": f"198.51.100.{i}"} for i in range(11)]},
            "allowed_address_pairs",
        ),
        ({"fixed_ips": [{"subnet_id": "00000000-0000-0000-0000-000000000000"}]}, "fixed_ips"),
        ({"name": "x" * 256}, "name"),
        ({"port_security_enabled": "perhaps"}, "port_security_enabled"),
    ],
)
def test_bad_port_is_refused_naming_the_field_and_nothing_changes(
    alice, project_a, net, fields, field
):
    before = state()
    with pytest.raises(Invalid) as refusal:
        actions.create_port(alice, project_a, net, **fields)
    assert field in refusal.value.errors
    assert state() == before


@pytest.mark.parametrize(
    ("cidr", "extra", "field"),
    [
        ("192.0.2.0/33", {}, "cidr"),
        ("192.0.2.5/24", {}, "cidr"),  # host bits set
        ("198.51.100.0/24", {"ip_version": 6}, "cidr"),
        ("198.51.100.0/24", {"gateway_ip": "203.0.113.1"}, "gateway_ip"),
        ("198.51.100.0/24", {"dhcp_servers": ["203.0.113.2"]}, "dhcp_servers"),
        ("198.51.100.0/31", {}, "cidr"),
    ],
)
def test_bad_subnet_is_refused_and_nothing_changes(alice, net, cidr, extra, field):
    before = state()
    with pytest.raises(Invalid) as refusal:
        actions.create_subnet(alice, net, cidr=cidr, **extra)
    assert field in refusal.value.errors
    assert state() == before


def test_ipv6_subnet_defaults_to_the_first_and_second_addresses(alice, net):
    subnet = actions.create_subnet(alice, net, cidr="2001:db8:5::/64")
    assert (subnet.gateway_ip, subnet.dhcp_servers) == ("2001:db8:5::1", ["2001:db8:5::2"])


def test_a_port_on_a_dual_stack_network_gets_one_address_of_each_family(alice, project_a, net):
    actions.create_subnet(alice, net, cidr="2001:db8:5::/64")
    vm = port(alice, project_a, net)
    assert sorted(vm.fixed_ips.values_list("ip_address", flat=True)) == [
        "192.0.2.3",
        "2001:db8:5::3",
    ]


def test_full_subnet_refuses_the_next_port(alice, project_a):
    network = actions.create_network(alice, project_a, name="tiny")
    actions.create_subnet(alice, network, cidr="198.51.100.0/29")  # .3 to .6 are free
    for _ in range(4):
        port(alice, project_a, network)
    before = state()
    with pytest.raises(Conflict) as refusal:
        port(alice, project_a, network)
    assert refusal.value.neutron_type == "IpAddressGenerationFailure"
    assert state() == before


def test_updating_a_port_audits_before_and_after_and_bumps_its_revision(alice, project_a, net):
    vm = port(alice, project_a, net, name="old")
    updated = actions.update_port(alice, vm, name="new")
    assert updated.revision_number == vm.revision_number + 1
    entry = AuditEntry.objects.get(object_type="port", action="update")
    assert (entry.before["name"], entry.after["name"]) == ("old", "new")
    assert entry.actor == alice


def test_an_update_that_changes_nothing_is_not_audited(alice, project_a, net):
    vm = port(alice, project_a, net, name="same")
    before = state()
    actions.update_port(alice, vm, name="same")
    assert state() == before


def test_reader_cannot_change_a_port(alice, rita, project_a, net):
    vm = port(alice, project_a, net)
    with pytest.raises(PermissionDenied):
        actions.update_port(rita, vm, name="x")


def test_outsider_cannot_delete_a_port(alice, charlie, project_a, net):
    vm = port(alice, project_a, net)
    before = state()
    with pytest.raises(NotFound):
        actions.delete_port(charlie, vm)
    assert state() == before


def test_changing_a_ports_groups_notifies_its_host_and_hosts_naming_the_groups(
    adam, alice, project_a, net, dispatched, django_capture_on_commit_callbacks
):
    from sgweb.security.actions import create_security_group_rule

    web, db = group(alice, project_a, "web"), group(alice, project_a, "db")
    create_security_group_rule(alice, db, direction="ingress", remote_group_id=str(web.id))
    port(adam, project_a, net, host="compute2", security_groups=[str(db.id)])
    vm = port(adam, project_a, net, host="compute1", security_groups=[])
    with django_capture_on_commit_callbacks(execute=True):
        actions.update_port(alice, vm, security_groups=[str(web.id)])
    assert dispatched["hosts"][-1] == (["compute1", "compute2"], f"port {vm.id} updated")
    changes = [(kind, event["object_type"]) for kind, event, _ in dispatched["events"]]
    assert ("change", "port") in changes


def test_moving_a_port_to_another_host_notifies_both_hosts(
    adam, alice, project_a, net, dispatched, django_capture_on_commit_callbacks
):
    vm = port(adam, project_a, net, host="compute1")
    with django_capture_on_commit_callbacks(execute=True):
        actions.update_port(adam, vm, host="compute2")
    assert dispatched["hosts"][-1][0] == ["compute1", "compute2"]


def test_nothing_is_dispatched_for_a_refused_change(
    alice, charlie, project_a, net, dispatched, django_capture_on_commit_callbacks
):
    vm = port(alice, project_a, net)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(NotFound):
        actions.delete_port(charlie, vm)
    assert dispatched == {"hosts": [], "events": [], "network_nodes": []}


def test_changing_dhcp_servers_notifies_the_hosts_of_the_networks_ports(
    adam, alice, project_a, net, dispatched, django_capture_on_commit_callbacks
):
    port(adam, project_a, net, host="compute1")
    subnet = net.subnets.get()
    with django_capture_on_commit_callbacks(execute=True):
        actions.update_subnet(alice, subnet, dhcp_servers=["192.0.2.250"])
    assert dispatched["hosts"][-1][0] == ["compute1"]
