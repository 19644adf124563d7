"""One policy on many routers: compiled with one `PolicyMemo`, it is checked and rendered once,
and every router's table is what it would be compiled alone (issue 16's propagation speed)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sgweb.firewall.errors import FirewallError
from sgweb.firewall.fwaas.compiler import (
    PolicyMemo,
    compile_network_node,
    compile_router,
    in_place_edits,
    policy_chain,
    render_delta,
    render_full,
)
from sgweb.firewall.fwaas.model import FirewallPolicy, FirewallRule, NetworkNodeState, RouterState
from tests.firewall.fwaas.example import APP_GROUP_OBJ, PROD_EGRESS, STATE, WEB_GROUP_OBJ


def router(n: int, egress: FirewallPolicy = PROD_EGRESS) -> RouterState:
    """The worked example's router again, under ids of its own, sharing its policies."""
    interfaces = tuple(
        replace(i, port_id=f"{n:02d}{i.port_id[2:]}") for i in STATE.router.interfaces
    )
    web, app = (f"{n:02d}{group.ports[0][2:]}" for group in (WEB_GROUP_OBJ, APP_GROUP_OBJ))
    groups = (
        replace(APP_GROUP_OBJ, id=f"{n:02d}{APP_GROUP_OBJ.id[2:]}", ports=(app,)),
        replace(WEB_GROUP_OBJ, id=f"{n:02d}{WEB_GROUP_OBJ.id[2:]}", ports=(web,),
                egress_policy=egress),
    )  # fmt: skip
    return RouterState(replace(STATE.router, id=f"r{n}", interfaces=interfaces), groups)


NODE = NetworkNodeState("net1", tuple(router(n) for n in range(1, 6)))


def test_routers_compiled_with_one_memo_are_what_each_compiles_to_alone() -> None:
    together = compile_network_node(NODE)
    for state in NODE.routers:
        alone = compile_router(state)
        assert together[state.router.id] == alone
        for family in (4, 6):
            shared, own = together[state.router.id].family(family), alone.family(family)
            assert render_full(shared) == render_full(own)
            assert dict(shared.origins) == dict(own.origins) and len(shared.origins) > 0


def test_a_policy_on_many_routers_is_rendered_once_per_family() -> None:
    compiled = compile_network_node(NODE)
    for family in (4, 6):
        chains = [
            compiled[state.router.id]
            .family(family)
            .chain(policy_chain(state.firewall_groups[1].id, family, "egress"))
            for state in NODE.routers
        ]
        assert all(chain is chains[0] for chain in chains)


def test_the_worked_example_compiled_with_a_used_memo_is_still_the_golden_table() -> None:
    memo = PolicyMemo()
    compile_network_node(NODE, memo)
    assert compile_router(STATE, memo) == compile_router(STATE)
    assert dict(compile_router(STATE, memo).family(4).origins) == dict(
        compile_router(STATE).family(4).origins
    )


def test_a_bad_rule_in_a_shared_policy_is_refused_for_every_router_of_the_memo() -> None:
    bad = replace(PROD_EGRESS, rules=(FirewallRule(id="x", protocol="gre"),))
    memo = PolicyMemo()
    for n in (1, 2):
        with pytest.raises(FirewallError) as error:
            compile_router(router(n, egress=bad), memo)
        assert error.value.code == "unknown-protocol"


def test_the_same_edit_in_chains_of_different_names_is_written_under_each_name() -> None:
    old = ("-j A", "-j B", "-j C")
    new = ("-j A", "-j X", "-j C")
    assert in_place_edits("one", old, new) == ["-D one 2", "-I one 2 -j X"]
    assert in_place_edits("two", old, new) == ["-D two 2", "-I two 2 -j X"]


def test_a_rule_inserted_into_a_shared_policy_is_the_same_delta_on_every_router() -> None:
    inserted = FirewallRule(id="new", protocol="tcp", destination_port="8080", action="deny")
    changed = replace(PROD_EGRESS, rules=(*PROD_EGRESS.rules[:2], inserted,
                                          *PROD_EGRESS.rules[2:]))  # fmt: skip
    before = compile_network_node(NODE)
    after = compile_network_node(replace(NODE, routers=tuple(router(n, changed)
                                                             for n in range(1, 6))))  # fmt: skip
    for state in NODE.routers:
        chain = policy_chain(state.firewall_groups[1].id, 4, "egress")
        delta = render_delta(before[state.router.id].family(4), after[state.router.id].family(4))
        assert (
            delta == f"*filter\n-I {chain} 5 -p tcp -m tcp --dport 8080 -j "
            "neutron-l3-agent-dropped\nCOMMIT\n"
        )
