import pytest

from sgweb.audit.models import AuditEntry
from sgweb.networks.models import FixedIP, Port
from tests.controlplane.api_helpers import NeutronClient, error_type
from tests.controlplane.factories import group, network_with_subnet, port


@pytest.fixture
def as_alice(alice):
    return NeutronClient(alice)


@pytest.fixture
def net(alice, project_a):
    network, _ = network_with_subnet(alice, project_a)
    return network


def state() -> tuple[int, int, int]:
    return Port.objects.count(), FixedIP.objects.count(), AuditEntry.objects.count()


def create(api, body):
    return api.post("/ports", {"port": body})


def test_new_port_gets_a_generated_mac_an_allocated_ip_and_the_default_group(
    as_alice, net, project_a
):
    response = create(as_alice, {"network_id": str(net.id), "name": "vm1"})
    assert response.status_code == 201
    body = response.json()["port"]
    assert body["mac_address"].startswith("fa:16:3e:")
    # .1 is the gateway and .2 the DHCP server: the first port gets .3
    assert body["fixed_ips"] == [
        {"subnet_id": body["fixed_ips"][0]["subnet_id"], "ip_address": "192.0.2.3"}
    ]
    assert len(body["security_groups"]) == 1
    assert body["port_security_enabled"] is True
    assert body["device"] == "tap" + body["id"][:11]
    assert body["tenant_id"] == project_a.id.hex


def test_port_with_explicit_ip_and_groups_keeps_their_order(as_alice, alice, project_a, net):
    web, db = group(alice, project_a, "web"), group(alice, project_a, "db")
    body = create(
        as_alice,
        {
            "network_id": str(net.id),
            "fixed_ips": [{"ip_address": "192.0.2.50"}],
            "security_groups": [str(db.id), str(web.id)],
        },
    ).json()["port"]
    assert body["fixed_ips"][0]["ip_address"] == "192.0.2.50"
    assert body["security_groups"] == [str(db.id), str(web.id)]


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("192.0.2.1", "reserved"),  # the gateway
        ("192.0.2.2", "reserved"),  # the DHCP server
        ("198.51.100.9", "no subnet"),
        ("not-an-ip", "valid IP"),
    ],
)
def test_unusable_fixed_ip_is_refused_and_nothing_changes(as_alice, net, address, words):
    before = state()
    response = create(as_alice, {"network_id": str(net.id), "fixed_ips": [{"ip_address": address}]})
    assert response.status_code == 400
    assert words in response.json()["NeutronError"]["message"]
    assert state() == before


def test_taken_ip_is_a_conflict(as_alice, alice, project_a, net):
    port(alice, project_a, net, fixed_ips=[{"ip_address": "192.0.2.10"}])
    response = create(
        as_alice, {"network_id": str(net.id), "fixed_ips": [{"ip_address": "192.0.2.10"}]}
    )
    assert response.status_code == 409
    assert error_type(response) == "IpAddressAlreadyAllocated"


def test_duplicate_mac_on_a_network_is_a_conflict(as_alice, alice, project_a, net):
    taken = port(alice, project_a, net)
    response = create(as_alice, {"network_id": str(net.id), "mac_address": taken.mac_address})
    assert response.status_code == 409
    assert error_type(response) == "MacAddressInUse"


def test_disabling_port_security_while_groups_remain_is_refused(as_alice, alice, project_a, net):
    vm = port(alice, project_a, net)
    response = as_alice.put(f"/ports/{vm.id}", {"port": {"port_security_enabled": False}})
    assert response.status_code == 409
    assert error_type(response) == "PortSecurityPortHasSecurityGroup"
    vm.refresh_from_db()
    assert vm.port_security_enabled is True


def test_removing_groups_and_port_security_together_works(as_alice, alice, project_a, net):
    vm = port(alice, project_a, net)
    response = as_alice.put(
        f"/ports/{vm.id}", {"port": {"security_groups": [], "port_security_enabled": False}}
    )
    assert response.status_code == 200
    body = response.json()["port"]
    assert (body["security_groups"], body["port_security_enabled"]) == ([], False)
    assert body["revision_number"] == 1


def test_allowed_address_pairs_default_to_the_ports_mac(as_alice, alice, project_a, net):
    vm = port(alice, project_a, net)
    response = as_alice.put(
        f"/ports/{vm.id}",
        {"port": {"allowed_address_pairs": [{"ip_address": "198.51.100.0/24"}]}},
    )
    assert response.json()["port"]["allowed_address_pairs"] == [
        {"ip_address": "198.51.100.0/24", "mac_address": vm.mac_address}
    ]


def test_members_may_not_bind_ports_to_hosts(as_alice, alice, project_a, net):
    vm = port(alice, project_a, net)
    response = as_alice.put(f"/ports/{vm.id}", {"port": {"binding:host_id": "compute1"}})
    assert response.status_code == 403
    assert Port.objects.get(pk=vm.pk).host is None


def test_admin_binds_a_port_and_the_host_is_registered(adam, alice, project_a, net):
    vm = port(alice, project_a, net)
    response = NeutronClient(adam).put(f"/ports/{vm.id}", {"port": {"binding:host_id": "compute9"}})
    assert response.json()["port"]["binding:host_id"] == "compute9"
    assert Port.objects.get(pk=vm.pk).host.name == "compute9"


def test_outsider_cannot_see_or_use_another_projects_port_or_network(
    alice, charlie, project_a, net
):
    vm = port(alice, project_a, net)
    as_charlie = NeutronClient(charlie)
    before = state()
    assert as_charlie.get(f"/ports/{vm.id}").status_code == 404
    assert as_charlie.put(f"/ports/{vm.id}", {"port": {"name": "x"}}).status_code == 404
    assert as_charlie.delete(f"/ports/{vm.id}").status_code == 404
    assert as_charlie.get(f"/networks/{net.id}").status_code == 404
    assert create(as_charlie, {"network_id": str(net.id)}).status_code == 404
    assert as_charlie.get("/ports").json()["ports"] == []
    assert state() == before


def test_outsider_cannot_attach_another_projects_group(alice, charlie, project_a, project_b):
    theirs = group(alice, project_a, "secret")
    network, _ = network_with_subnet(charlie, project_b, "198.51.100.0/24")
    response = create(
        NeutronClient(charlie),
        {"network_id": str(network.id), "security_groups": [str(theirs.id)]},
    )
    assert response.status_code == 404
    assert error_type(response) == "SecurityGroupNotFound"


def test_ports_filter_by_security_group_fixed_ip_and_network(as_alice, alice, project_a, net):
    web = group(alice, project_a)
    tagged = port(alice, project_a, net, security_groups=[str(web.id)])
    port(alice, project_a, net)
    by_group = as_alice.get("/ports", {"security_groups": str(web.id)}).json()["ports"]
    assert [p["id"] for p in by_group] == [str(tagged.id)]
    address = tagged.fixed_ips.get().ip_address
    by_ip = as_alice.get("/ports", {"fixed_ips": f"ip_address={address}"}).json()["ports"]
    assert [p["id"] for p in by_ip] == [str(tagged.id)]
    assert len(as_alice.get("/ports", {"network_id": str(net.id)}).json()["ports"]) == 2


def test_deleting_a_port_frees_its_address(as_alice, alice, project_a, net):
    vm = port(alice, project_a, net)
    assert as_alice.delete(f"/ports/{vm.id}").status_code == 204
    assert FixedIP.objects.count() == 0
    entry = AuditEntry.objects.get(object_type="port", action="delete")
    assert entry.before["id"] == str(vm.id)


def test_subnet_defaults_gateway_and_dhcp_server(as_alice, alice, project_a):
    network = as_alice.post("/networks", {"network": {"name": "n"}}).json()["network"]
    response = as_alice.post(
        "/subnets",
        {"subnet": {"network_id": network["id"], "cidr": "203.0.113.0/24", "ip_version": 4}},
    )
    assert response.status_code == 201
    body = response.json()["subnet"]
    assert (body["gateway_ip"], body["dhcp_servers"]) == ("203.0.113.1", ["203.0.113.2"])


def test_overlapping_subnet_on_a_network_is_refused(as_alice, net):
    response = as_alice.post(
        "/subnets", {"subnet": {"network_id": str(net.id), "cidr": "192.0.2.128/25"}}
    )
    assert response.status_code == 400
    assert "overlaps" in response.json()["NeutronError"]["message"]


def test_network_with_ports_cannot_be_deleted(as_alice, alice, project_a, net):
    port(alice, project_a, net)
    response = as_alice.delete(f"/networks/{net.id}")
    assert response.status_code == 409
    assert error_type(response) == "NetworkInUse"


def test_quota_api_shows_limits_and_only_admins_change_them(adam, as_alice, project_a):
    shown = as_alice.get(f"/quotas/{project_a.id.hex}").json()["quota"]
    assert (shown["security_group"], shown["security_group_rule"]) == (10, 100)
    refused = as_alice.put(f"/quotas/{project_a.id.hex}", {"quota": {"security_group": 50}})
    assert refused.status_code == 403
    changed = NeutronClient(adam).put(
        f"/quotas/{project_a.id.hex}", {"quota": {"security_group": 50}}
    )
    assert changed.json()["quota"]["security_group"] == 50


def test_outsider_cannot_read_another_projects_quota(charlie, project_a):
    assert NeutronClient(charlie).get(f"/quotas/{project_a.id.hex}").status_code == 404
