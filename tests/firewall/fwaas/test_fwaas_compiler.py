"""The FWaaS compiler: the worked example's golden text, determinism, deltas, bad input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sgweb.firewall.errors import FirewallError
from sgweb.firewall.fwaas.compiler import (
    DEFAULT_CHAIN,
    FORWARD_CHAIN,
    compile_router,
    render_delta,
    render_full,
    rule_spec,
)
from sgweb.firewall.fwaas.model import FirewallGroup, FirewallPolicy, FirewallRule, RouterState
from tests.firewall.fwaas.example import (
    APP_GROUP_OBJ,
    APP_PORT,
    PROD_EGRESS,
    STATE,
    WEB_GROUP_OBJ,
)

HERE = Path(__file__).parent


def golden(family: int) -> str:
    return (HERE / f"golden_r1.v{family}.txt").read_text()


@pytest.mark.parametrize("family", [4, 6])
def test_the_worked_example_compiles_to_the_golden_table(family: int) -> None:
    assert render_full(compile_router(STATE).family(family)) == golden(family)


def test_the_order_of_groups_and_ports_in_the_state_does_not_change_the_output() -> None:
    shuffled = replace(
        STATE,
        router=replace(STATE.router, interfaces=tuple(reversed(STATE.router.interfaces))),
        firewall_groups=tuple(reversed(STATE.firewall_groups)),
    )
    assert compile_router(shuffled) == compile_router(STATE)
    assert render_full(compile_router(shuffled).family(4)) == golden(4)


def test_disabled_rules_are_skipped_but_keep_their_position_for_the_words() -> None:
    compiled = compile_router(STATE).family(4)
    chain = "neutron-l3-agent-ov4fa11ed00"
    positions = [o.position for (name, _i), o in sorted(compiled.origins.items()) if name == chain]
    assert positions == [1, 2, 3, 4, 6]  # 5 is disabled, 7 is IPv6


def test_a_group_that_is_down_has_only_the_default_drop_jumps() -> None:
    state = replace(STATE, firewall_groups=(replace(APP_GROUP_OBJ, admin_state_up=False),))
    compiled = compile_router(state).family(4)
    assert compiled.chain(FORWARD_CHAIN) == (
        f"-o qr-9e1d7b20-aa -j {DEFAULT_CHAIN}",
        f"-i qr-9e1d7b20-aa -j {DEFAULT_CHAIN}",
    )
    assert not any(name.startswith("neutron-l3-agent-iv4") for name, _ in compiled.chains)


def test_a_group_on_ports_of_other_routers_only_is_left_out() -> None:
    elsewhere = FirewallGroup(id="fc00aaaa-x", ports=("some-other-port",))
    state = replace(STATE, firewall_groups=(elsewhere,))
    assert compile_router(state).family(4).chain(FORWARD_CHAIN) == ()


def test_a_policy_change_touches_only_its_chains() -> None:
    before = compile_router(STATE)
    rules = tuple(r for r in PROD_EGRESS.rules if r.id != "r-deny-db")
    after_state = replace(
        STATE,
        firewall_groups=(
            APP_GROUP_OBJ,
            replace(WEB_GROUP_OBJ, egress_policy=replace(PROD_EGRESS, rules=rules)),
        ),
    )
    after = compile_router(after_state)
    delta = render_delta(before.family(4), after.family(4))
    # deny-db was the chain's 5th rule (after INVALID and ESTABLISHED): only it goes.
    assert delta == "*filter\n-D neutron-l3-agent-ov4fa11ed00 5\nCOMMIT\n"
    assert render_delta(before.family(6), after.family(6)) == ""  # no IPv6 rule changed


def test_an_inserted_rule_is_inserted_at_its_position() -> None:
    before = compile_router(STATE)
    new_rule = FirewallRule(id="r-new", protocol="tcp", destination_port="443", action="allow")
    rules = (*PROD_EGRESS.rules[:1], new_rule, *PROD_EGRESS.rules[1:])
    after = compile_router(
        replace(
            STATE,
            firewall_groups=(
                APP_GROUP_OBJ,
                replace(WEB_GROUP_OBJ, egress_policy=replace(PROD_EGRESS, rules=rules)),
            ),
        )
    )
    delta = render_delta(before.family(4), after.family(4))
    assert delta.splitlines()[1:-1] == [
        "-I neutron-l3-agent-ov4fa11ed00 4 -p tcp -m tcp --dport 443 -j neutron-l3-agent-accepted"
    ]
    # the origins follow: the rule after it is one further down, position 3 in the policy
    origin = after.family(4).origins[("neutron-l3-agent-ov4fa11ed00", 4)]
    assert (origin.rule_name, origin.position) == ("allow-http", 3)


def test_a_removed_group_s_chains_are_flushed_and_deleted() -> None:
    before = compile_router(STATE)
    after = compile_router(replace(STATE, firewall_groups=(APP_GROUP_OBJ,)))
    delta = render_delta(before.family(4), after.family(4))
    assert "-X neutron-l3-agent-iv4fa11ed00" in delta
    assert "-X neutron-l3-agent-ov4fa11ed00" in delta
    assert "-D neutron-l3-agent-FORWARD 1" in delta  # its jumps go by in-place deletes


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (FirewallRule(id="a", protocol="udp", source_port="1000:2000", action="allow"),
         "-p udp -m udp --sport 1000:2000 -j neutron-l3-agent-accepted"),
        (FirewallRule(id="b", destination_port="80:80", protocol="tcp"),
         "-p tcp -m tcp --dport 80 -j neutron-l3-agent-dropped"),
        (FirewallRule(id="c", source_ip_address="192.0.2.77/24", action="reject"),
         "-s 192.0.2.0/24 -j neutron-l3-agent-rejected"),
        (FirewallRule(id="d", source_ip_address="0.0.0.0/0", protocol="icmp"),
         "-p icmp -j neutron-l3-agent-dropped"),
        (FirewallRule(id="e", ip_version=6, destination_ip_address="2001:db8::1"),
         "-d 2001:db8::1/128 -j neutron-l3-agent-dropped"),
    ],
)  # fmt: skip
def test_rules_are_written_the_way_iptables_save_prints_them(rule: FirewallRule, text: str) -> None:
    assert rule_spec(rule) == text


@pytest.mark.parametrize(
    ("rule", "field", "code"),
    [
        (FirewallRule(id="x", source_ip_address="2001:db8::/64"), "source_ip_address",
         "cidr-family"),
        (FirewallRule(id="x", ip_version=6, destination_ip_address="192.0.2.1"),
         "destination_ip_address", "cidr-family"),
        (FirewallRule(id="x", protocol="icmp", destination_port="80"), "destination_port",
         "no-ports-for-protocol"),
        (FirewallRule(id="x", source_port="22"), "source_port", "no-ports-for-protocol"),
        (FirewallRule(id="x", protocol="tcp", destination_port="90:80"), "destination_port",
         "port-range"),
        (FirewallRule(id="x", protocol="tcp", destination_port="70000"), "destination_port",
         "port-range"),
        (FirewallRule(id="x", protocol="gre"), "protocol", "unknown-protocol"),
        (FirewallRule(id="x", action="permit"), "action", "action"),
        (FirewallRule(id="x", ip_version=5), "ip_version", "ip-version"),
        (FirewallRule(id="x", source_ip_address="not-an-address"), "source_ip_address",
         "bad-cidr"),
    ],
)  # fmt: skip
def test_bad_rules_are_refused_with_the_field_named(
    rule: FirewallRule, field: str, code: str
) -> None:
    group = FirewallGroup(
        id="fd00", ingress_policy=FirewallPolicy(id="p", rules=(rule,)), ports=(APP_PORT,)
    )
    with pytest.raises(FirewallError) as error:
        compile_router(RouterState(router=STATE.router, firewall_groups=(group,)))
    assert (error.value.field, error.value.code) == (field, code)


def test_a_port_in_two_groups_is_refused() -> None:
    other = FirewallGroup(id="fe00", ports=(APP_PORT,))
    with pytest.raises(FirewallError) as error:
        compile_router(replace(STATE, firewall_groups=(APP_GROUP_OBJ, other)))
    assert error.value.code == "port-in-use"


def test_a_network_node_compiles_each_router_on_its_own() -> None:
    from sgweb.firewall.fwaas.compiler import compile_network_node
    from sgweb.firewall.fwaas.model import NetworkNodeState

    other = RouterState(router=replace(STATE.router, id="r2-0000"))
    compiled = compile_network_node(NetworkNodeState(host="net1", routers=(STATE, other)))
    assert sorted(compiled) == ["r1-0000-0000", "r2-0000"]
    assert compiled["r2-0000"].namespace == "qrouter-r2-0000"
