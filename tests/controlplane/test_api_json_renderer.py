"""The API's fast JSON renderer writes exactly what DRF's JSONRenderer wrote before it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rest_framework.renderers import JSONRenderer

from sgweb.api.renderers import FastJSONRenderer, RenderedList
from sgweb.security import actions
from sgweb.tenancy.models import Tag
from tests.controlplane.api_helpers import NeutronClient
from tests.controlplane.factories import group, network_with_subnet, port


def drf_bytes(data) -> bytes:
    return bytes(JSONRenderer().render(data, "application/json", {}))


def test_every_list_page_reads_byte_for_byte_as_drf_wrote_it(alice, project_a):
    web = group(alice, project_a, "wéb \u2028 ☃")
    actions.create_security_group_rule(
        alice, web, direction="ingress", protocol="tcp", port_range_min=22, port_range_max=22,
        remote_ip_prefix="198.51.100.0/24", description='quote " and \\ and ünïcode',
    )  # fmt: skip
    network, _ = network_with_subnet(alice, project_a)
    port(alice, project_a, network, security_groups=[str(web.id)])
    api = NeutronClient(alice)
    assert api.put(f"/security-groups/{web.id}/tags/ünïcode", {}).status_code == 201
    for path in ("/security-groups", "/security-group-rules", "/ports", "/networks", "/subnets"):
        response = api.get(path)
        assert response.status_code == 200
        assert response.content == drf_bytes(response.data), path
    assert Tag.objects.exists()


def test_an_error_reads_byte_for_byte_as_drf_wrote_it(alice):
    response = NeutronClient(alice).get("/security-groups", {"colour": "red"})
    assert response.status_code == 400
    assert response.content == drf_bytes(response.data)


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 7, 3, 4, 5, 678901, tzinfo=UTC),
        Decimal("1.50"),
        uuid.UUID(int=7),
        {1: "integer key"},
        2**70,
        "line\u2028separator\u2029",
        [1.5, None, True, "ß"],
    ],
)
def test_values_outside_our_dictionaries_render_as_drf_renders_them(value):
    data = {"value": value}
    assert FastJSONRenderer().render(data, "application/json", {}) == drf_bytes(data)


def test_an_indented_answer_asked_for_is_drf_s():
    data = {"a": [1, 2]}
    context = {"indent": 4}
    assert FastJSONRenderer().render(data, "application/json", context) == bytes(
        JSONRenderer().render(data, "application/json", context)
    )


def test_a_rendered_list_is_written_as_is_and_read_as_fresh_copies():
    rules = [{"id": "a", "tags": [], "description": "ünï \u2028"}, {"id": "b", "port": None}]
    kept = RenderedList(rules)
    data = {"groups": [{"rules": kept}, {"rules": RenderedList([])}]}
    plain = {"groups": [{"rules": rules}, {"rules": []}]}
    assert FastJSONRenderer().render(data, "application/json", {}) == drf_bytes(plain)
    assert drf_bytes(data) == drf_bytes(plain)
    copies = list(kept)
    copies[0]["tags"].append("changed")
    assert list(kept) == rules
