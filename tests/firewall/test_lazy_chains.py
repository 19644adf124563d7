"""Per-port chains are lazy (rules made on first read, text from shared prototypes): the text
must be what rendering the rules gives, and the rules what the eager builder makes."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bench.scenarios import generated_scenario
from sgweb.firewall.compiler import CompileCache, compile_host
from sgweb.firewall.incremental import diff
from sgweb.firewall.ir import Chain, LazyChain
from sgweb.firewall.model import COMPAT_ARTICLE, LOG_ALL, HostState, Port
from sgweb.firewall.render import chain_text, render_iptables
from sgweb.firewall.scenario import build_scenario_state
from tests.firewall import scenarios
from tests.firewall.saved_compiles import SCENARIOS, scenario_name


def _lazy_chains(compiled) -> list[LazyChain]:
    # Both families share the host-wide chains: each object once.
    found = {
        id(chain): chain
        for family in (compiled.v4, compiled.v6)
        for table in family.tables
        for chain in table.chains
        if isinstance(chain, LazyChain)
    }
    return list(found.values())


@pytest.mark.parametrize("params", SCENARIOS, ids=lambda params: scenario_name(params))
def test_a_lazy_chain_renders_the_very_text_of_its_rules(params) -> None:
    path = generated_scenario(
        params["ports"],
        groups=params["groups"],
        rules=params["rules"],
        seed=params["seed"],
        extra_args=params["extra_args"],
    )
    compiled = compile_host(build_scenario_state(json.loads(path.read_text())))
    chains = _lazy_chains(compiled)
    assert chains
    for chain in chains:
        assert not chain.materialized
        text = chain.text()
        assert text == chain_text(chain.rules), chain.name
        assert chain.materialized
        assert all(rule.chain == chain.name for rule in chain.rules)


def test_rendering_and_diffing_a_full_compile_makes_no_port_rule() -> None:
    state = scenarios.host_state()
    cache = CompileCache()
    compiled = compile_host(state, cache=cache)
    render_iptables(compiled, 4)
    render_iptables(compiled, 6)
    diff(None, compiled, include_builtin_jumps=True)
    diff(compiled, compile_host(state))  # no cache: equal chains are recognised by text
    assert not any(chain.materialized for chain in _lazy_chains(compiled))


def test_a_lazy_chain_equals_the_eager_chain_with_the_same_rules() -> None:
    compiled = compile_host(scenarios.host_state())
    lazy = _lazy_chains(compiled)[0]
    eager = Chain(lazy.name, lazy.rules)
    assert lazy == eager and eager == lazy and hash(lazy) == hash(eager)
    assert lazy != Chain(lazy.name, lazy.rules[:-1])


def _every_feature_state() -> HostState:
    """The hand-made host plus what generated scenarios lack: a port without addresses, two
    ports on one shared bridge (one of them stateless), a logged port, the article layout."""
    state = scenarios.host_state()
    ports = [
        *state.ports,
        Port("ffffffff-0006-4000-8000-00000000000f", "fa:16:3e:00:00:0f", (), (scenarios.WEB,)),
        Port(
            "abababab-0007-4000-8000-000000000007",
            "fa:16:3e:00:00:07",
            ("192.0.2.17",),
            (scenarios.DB,),
            bridge="brq-shared",
        ),
        Port(
            "cdcdcdcd-0008-4000-8000-000000000008",
            "fa:16:3e:00:00:08",
            ("192.0.2.18", "2001:db8:1::18"),
            (scenarios.STATELESS,),
            bridge="brq-shared",
            log_events=LOG_ALL,
        ),
    ]
    return dataclasses.replace(state, ports=tuple(ports), compat=COMPAT_ARTICLE)


@pytest.mark.parametrize("enable_ipset", [True, False])
def test_every_lazy_chain_of_a_host_with_every_feature_renders_the_text_of_its_rules(
    enable_ipset: bool,
) -> None:
    state = dataclasses.replace(_every_feature_state(), enable_ipset=enable_ipset)
    chains = _lazy_chains(compile_host(state))
    assert {chain.name.split("-", 2)[-1] for chain in chains} >= {"PREROUTING", "sg-chain"}
    for chain in chains:
        assert chain.text() == chain_text(chain.rules), chain.name
