"""The network node's wire format: a round trip, one digest whatever the order, refusals."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from sgweb.firewall.fwaas import codec
from sgweb.firewall.fwaas.model import NetworkNodeState, Router, RouterState
from tests.firewall.fwaas.example import APP_GROUP_OBJ, STATE, WEB_GROUP_OBJ

NODE = NetworkNodeState(
    host="network1",
    routers=(STATE, RouterState(router=Router(id="r0-empty", name="r0"))),
)


def test_a_state_survives_the_round_trip_in_canonical_order() -> None:
    back = codec.loads(codec.dumps(NODE))
    assert back == codec.canonical(NODE)
    assert codec.dumps(back) == codec.dumps(NODE)
    assert [r.router.id for r in back.routers] == ["r0-empty", STATE.router.id]
    # policy order is the policy: kept as given
    groups = {group.id: group for group in back.routers[1].firewall_groups}
    assert groups[WEB_GROUP_OBJ.id].egress_policy == WEB_GROUP_OBJ.egress_policy


def test_the_same_state_in_another_order_has_the_same_digest() -> None:
    shuffled = replace(
        STATE,
        router=replace(STATE.router, interfaces=tuple(reversed(STATE.router.interfaces))),
        firewall_groups=(WEB_GROUP_OBJ, APP_GROUP_OBJ),
    )
    other = NetworkNodeState(host="network1", routers=(NODE.routers[1], shuffled))
    assert codec.digest(codec.dumps(other)) == codec.digest(codec.dumps(NODE))


def test_a_changed_rule_order_changes_the_digest() -> None:
    policy = WEB_GROUP_OBJ.egress_policy
    assert policy is not None
    swapped = replace(policy, rules=tuple(reversed(policy.rules)))
    group = replace(WEB_GROUP_OBJ, egress_policy=swapped)
    changed = NetworkNodeState(
        host="network1", routers=(replace(STATE, firewall_groups=(APP_GROUP_OBJ, group)),)
    )
    before = NetworkNodeState(host="network1", routers=(STATE,))
    assert codec.digest(codec.dumps(changed)) != codec.digest(codec.dumps(before))


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        json.dumps({"format": 99, "host": "n"}),
        json.dumps({"format": 1, "host": "n", "routers": {"a": 1}}),
        json.dumps({"format": 1, "host": "n", "routers": [{"router": 5}]}),
        json.dumps({"format": 1, "host": "n", "routers": [{"router": {"name": "no id"}}]}),
        json.dumps(
            {
                "format": 1,
                "host": "n",
                "routers": [
                    {"router": {"id": "r"}, "firewall_groups": [{"id": "g", "ingress_policy": "p"}]}
                ],
            }
        ),
    ],
)
def test_a_document_that_is_not_a_network_node_state_is_refused(text: str) -> None:
    with pytest.raises(codec.CodecError):
        codec.loads(text)


def test_a_policy_shared_by_many_groups_is_in_the_document_once() -> None:
    text = codec.dumps(NODE)
    assert text.count('"name":"deny-db"') == 1
    back = codec.loads(text)
    group = next(g for g in back.routers[1].firewall_groups if g.id == WEB_GROUP_OBJ.id)
    assert group.egress_policy == WEB_GROUP_OBJ.egress_policy


def test_two_different_policies_under_one_id_cannot_be_encoded() -> None:
    policy = WEB_GROUP_OBJ.egress_policy
    assert policy is not None
    impostor = replace(APP_GROUP_OBJ, ingress_policy=replace(policy, name="other"))
    state = NetworkNodeState("n", (replace(STATE, firewall_groups=(WEB_GROUP_OBJ, impostor)),))
    with pytest.raises(ValueError, match=policy.id):
        codec.dumps(state)
