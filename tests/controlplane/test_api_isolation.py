"""An outsider guessing the URL of another project's object learns nothing: 404 everywhere."""

import pytest

from sgweb.audit.models import AuditEntry
from sgweb.security import actions
from tests.controlplane.api_helpers import NeutronClient
from tests.controlplane.factories import group, network_with_subnet, port


@pytest.fixture
def alices_objects(alice, project_a) -> dict[str, str]:
    web = group(alice, project_a)
    rule = actions.create_security_group_rule(alice, web, direction="ingress", protocol="udp")
    network, subnet = network_with_subnet(alice, project_a)
    vm = port(alice, project_a, network, security_groups=[str(web.id)])
    return {
        "security-groups": str(web.id),
        "security-group-rules": str(rule.id),
        "networks": str(network.id),
        "subnets": str(subnet.id),
        "ports": str(vm.id),
    }


SINGULAR = {
    "security-groups": "security_group",
    "security-group-rules": "security_group_rule",
    "networks": "network",
    "subnets": "subnet",
    "ports": "port",
}


@pytest.mark.parametrize("collection", list(SINGULAR))
def test_outsider_gets_404_for_every_verb_on_a_guessed_url(charlie, alices_objects, collection):
    api = NeutronClient(charlie)
    path = f"/{collection}/{alices_objects[collection]}"
    audit = AuditEntry.objects.count()
    assert api.get(path).status_code == 404
    assert api.put(path, {SINGULAR[collection]: {"name": "x"}}).status_code == 404
    assert api.delete(path).status_code == 404
    assert AuditEntry.objects.count() == audit
    assert alices_objects[collection] not in api.get(f"/{collection}").content.decode()


@pytest.mark.parametrize("collection", list(SINGULAR))
def test_teammate_sees_the_same_objects(bob, alices_objects, collection):
    api = NeutronClient(bob)
    assert api.get(f"/{collection}/{alices_objects[collection]}").status_code == 200


@pytest.mark.parametrize("collection", list(SINGULAR))
def test_reader_sees_but_cannot_delete(rita, alices_objects, collection):
    api = NeutronClient(rita)
    path = f"/{collection}/{alices_objects[collection]}"
    assert api.get(path).status_code == 200
    assert api.delete(path).status_code in (403, 405)
