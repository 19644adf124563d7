"""Packet logging in the compiled chains: NFLOG rules for logged ports only, rate-limited, in
front of the default drop (DROP) and of each user rule (ACCEPT); verdicts unchanged."""

from __future__ import annotations

import dataclasses
import os
import secrets

import pytest

from sgweb.firewall import codec
from sgweb.firewall.compiler import CompileCache, compile_host
from sgweb.firewall.errors import FirewallError
from sgweb.firewall.incremental import diff
from sgweb.firewall.ir import NFLOG, ORIGIN_LOG_ACCEPT, ORIGIN_LOG_DROP, CompiledHost
from sgweb.firewall.model import HostState, LogSettings
from sgweb.firewall.render import chain_text, render_ipsets, render_iptables, rendered_chain
from sgweb.firewall.trace.packet import Packet
from sgweb.firewall.trace.tracer import trace
from sgweb.kernel.runner import SubprocessRunner
from tests.firewall import scenarios

A_IN = "neutron-openvswi-iaaaaaaaa-0"
A_OUT = "neutron-openvswi-oaaaaaaaa-0"
A = scenarios.PORT_A
_RESTORE = {4: "iptables-restore", 6: "ip6tables-restore"}
_SAVE = {4: "iptables-save", 6: "ip6tables-save"}
LIMIT = "-m limit --limit 100/sec --limit-burst 25"


def _logging(state: HostState, events: dict[str, str], **settings: int) -> HostState:
    ports = tuple(
        dataclasses.replace(port, log_events=events[port.id]) if port.id in events else port
        for port in state.ports
    )
    return dataclasses.replace(state, ports=ports, log_settings=LogSettings(**settings))


def _lines(compiled: CompiledHost, family: int, chain: str) -> list[str]:
    prefix = f"-A {chain} "
    return [
        line for line in render_iptables(compiled, family).splitlines() if line.startswith(prefix)
    ]


def test_a_port_without_logging_keeps_byte_identical_chains_and_documents() -> None:
    state = scenarios.host_state()
    logged_elsewhere = _logging(state, {scenarios.PORT_B: "ALL"}, rate=5)
    plain, other = compile_host(state), compile_host(logged_elsewhere)
    for family in (4, 6):
        assert _lines(other, family, A_IN) == _lines(plain, family, A_IN)
        assert "NFLOG" not in render_iptables(plain, family)
    # The desired-state document of a host without logging is the one it always was.
    assert '"log_' not in codec.dumps(state)


def test_drop_logging_puts_one_limited_nflog_rule_in_front_of_each_default_drop() -> None:
    compiled = compile_host(_logging(scenarios.host_state(), {A: "DROP"}))
    ingress, egress = _lines(compiled, 4, A_IN), _lines(compiled, 4, A_OUT)
    assert ingress[-2:] == [
        f'-A {A_IN} {LIMIT} -j NFLOG --nflog-prefix "DROP ingress {A}" --nflog-group 10',
        f"-A {A_IN} -j neutron-openvswi-sg-fallback",
    ]
    assert egress[-2] == (
        f'-A {A_OUT} {LIMIT} -j NFLOG --nflog-prefix "DROP egress {A}" --nflog-group 10'
    )
    assert sum("NFLOG" in line for line in ingress + egress) == 2


def test_accept_logging_copies_each_user_rule_match_in_front_of_it() -> None:
    compiled = compile_host(_logging(scenarios.host_state(), {A: "ACCEPT"}))
    ingress = _lines(compiled, 4, A_IN)
    http = ingress.index(
        f'-A {A_IN} -p tcp -m tcp --dport 80 -m comment --comment "sg-rule web-http" -j RETURN'
    )
    assert ingress[http - 1] == (
        f"-A {A_IN} -p tcp -m tcp --dport 80 {LIMIT} -j NFLOG "
        f'--nflog-prefix "ACCEPT ingress {A}" --nflog-group 10'
    )
    assert not any("DROP ingress" in line for line in ingress)
    chain = compiled.v4.table("filter").chain(A_IN)  # type: ignore[union-attr]
    assert chain is not None
    logs = [rule for rule in chain.rules if rule.target == NFLOG]
    user_rules = [rule for rule in chain.rules if rule.origin.kind == "sg-rule"]
    assert [rule.origin.rule_id for rule in logs] == [rule.origin.rule_id for rule in user_rules]
    assert {rule.origin.kind for rule in logs} == {ORIGIN_LOG_ACCEPT}


def test_rate_burst_and_nflog_group_per_family_come_from_the_host_settings() -> None:
    state = _logging(
        scenarios.host_state(), {A: "ALL"}, rate=7, burst=3, nflog_group_v4=40, nflog_group_v6=60
    )
    compiled = compile_host(state)
    v4, v6 = _lines(compiled, 4, A_IN), _lines(compiled, 6, A_IN)
    assert v4[-2].endswith(
        f'-m limit --limit 7/sec --limit-burst 3 -j NFLOG --nflog-prefix "DROP ingress {A}" '
        "--nflog-group 40"
    )
    assert v6[-2].endswith("--nflog-group 60")
    drop = compiled.v6.table("filter").chain(A_IN).rules[-2]  # type: ignore[union-attr]
    assert (drop.origin.kind, drop.origin.port_id) == (ORIGIN_LOG_DROP, A)


def test_changing_the_settings_recompiles_logged_ports_with_a_cache() -> None:
    cache = CompileCache()
    state = _logging(scenarios.host_state(), {A: "DROP"})
    compile_host(state, cache=cache)
    after = compile_host(dataclasses.replace(state, log_settings=LogSettings(rate=9)), cache=cache)
    assert "--limit 9/sec" in _lines(after, 4, A_IN)[-2]
    fresh = compile_host(dataclasses.replace(state, log_settings=LogSettings(rate=9)))
    assert render_iptables(after, 4) == render_iptables(fresh, 4)


def test_logging_never_changes_a_verdict() -> None:
    state = scenarios.host_state()
    logged = _logging(state, {p.id: "ALL" for p in state.ports})
    tap = "tapaaaaaaaa-00"
    fabric = "qvb" + A[:11]
    towards_a = {
        "src": "203.0.113.77",
        "dst": "192.0.2.10",
        "physdev_in": fabric,
        "physdev_out": tap,
    }
    packets = (
        Packet(protocol="tcp", dport=80, **towards_a),  # type: ignore[arg-type]
        Packet(protocol="tcp", dport=81, **towards_a),  # type: ignore[arg-type]
        Packet(
            protocol="udp",
            src="192.0.2.10",
            dst="198.51.100.9",
            dport=53,
            physdev_in=tap,
            physdev_out=fabric,
            src_mac="fa:16:3e:00:00:0a",
        ),
        Packet(
            protocol="udp",
            src="192.0.2.99",
            dst="198.51.100.9",
            dport=53,
            physdev_in=tap,
            physdev_out=fabric,
            src_mac="fa:16:3e:00:00:0a",
        ),
    )
    plain, with_log = compile_host(state), compile_host(logged)
    verdicts = [(trace(plain, p).verdict, trace(with_log, p).verdict) for p in packets]
    # The logged walk passes the log rules: the dropped packet the DROP log, the accepted one
    # the ACCEPT copy of the rule that allowed it.
    kinds = [{m.rule.origin.kind for m in trace(with_log, p).matched} for p in packets[:2]]
    assert ORIGIN_LOG_ACCEPT in kinds[0] and ORIGIN_LOG_DROP not in kinds[0]
    assert ORIGIN_LOG_DROP in kinds[1]
    assert verdicts == [
        ("ACCEPT", "ACCEPT"),
        ("DROP", "DROP"),
        ("ACCEPT", "ACCEPT"),
        ("DROP", "DROP"),
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rate": 0}, "rate"),
        ({"burst": 10_001}, "burst"),
        ({"nflog_group_v4": 0}, "nflog_group_v4"),
    ],
)
def test_bad_log_settings_are_refused_with_the_field_named(
    change: dict[str, int], field: str
) -> None:
    with pytest.raises(FirewallError, match=field):
        compile_host(_logging(scenarios.host_state(), {A: "DROP"}, **change))


def test_an_unknown_log_event_is_refused() -> None:
    with pytest.raises(FirewallError, match="log_events"):
        compile_host(_logging(scenarios.host_state(), {A: "SOME"}))


def test_the_document_carries_logging_both_ways() -> None:
    state = _logging(scenarios.host_state(), {A: "ACCEPT"}, rate=50)
    assert codec.loads(codec.dumps(state)) == state


@pytest.mark.kernel
def test_the_kernel_dumps_logged_chains_back_exactly_as_rendered() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    state = _logging(scenarios.host_state(), {A: "ALL", scenarios.PORT_C: "ACCEPT"})
    compiled = compile_host(state)
    runner = SubprocessRunner()
    netns = f"sgwc-{os.getpid()}-{secrets.token_hex(3)}"
    runner.run(["ip", "netns", "add", netns])
    try:
        runner.run(["ipset", "restore"], input=render_ipsets(compiled), netns=netns)
        for family in (4, 6):
            restore, save = _RESTORE[family], _SAVE[family]
            text = render_iptables(compiled, family)
            runner.run([restore, "--noflush"], input=text, netns=netns)
            dumped = runner.run([save], netns=netns).stdout.splitlines()
            for chain in (A_IN, A_OUT):
                assert [line for line in dumped if line.startswith(f"-A {chain} ")] == _lines(
                    compiled, family, chain
                )
    finally:
        runner.release_netns(netns)
        runner.run(["ip", "netns", "del", netns], check=False)
        runner.close()


@pytest.mark.kernel
def test_disabling_the_log_removes_its_nflog_rules_by_an_incremental_apply() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    plain_state = scenarios.host_state()
    logged, plain = compile_host(_logging(plain_state, {A: "ALL"})), compile_host(plain_state)
    runner = SubprocessRunner()
    netns = f"sgwc-{os.getpid()}-{secrets.token_hex(3)}"
    runner.run(["ip", "netns", "add", netns])
    try:
        runner.run(["ipset", "restore"], input=render_ipsets(logged), netns=netns)
        for family in (4, 6):
            runner.run(
                [_RESTORE[family], "--noflush"], input=render_iptables(logged, family), netns=netns
            )
        delta = diff(logged, plain)
        for family, text in delta.iptables:
            runner.run([_RESTORE[family], "--noflush"], input=text, netns=netns)
        for family in (4, 6):
            dumped = runner.run([_SAVE[family]], netns=netns).stdout
            assert "NFLOG" not in dumped
            for chain in (A_IN, A_OUT):
                kernel = [line for line in dumped.splitlines() if line.startswith(f"-A {chain} ")]
                assert kernel == _lines(plain, family, chain)
    finally:
        runner.release_netns(netns)
        runner.run(["ip", "netns", "del", netns], check=False)
        runner.close()


def test_logged_ports_share_prototypes_and_their_text_is_their_rules() -> None:
    # Prototype text carries a stand-in for the port id; each port's text must still be exactly
    # its own rules, rendered (what counters, the tracer and drift checks read).
    state = scenarios.host_state()
    logged = _logging(state, {p.id: "ALL" for p in state.ports})
    compiled = compile_host(logged)
    for family in (4, 6):
        table = compiled.family(family).table("filter")
        assert table is not None
        for chain in table.chains:
            if chain.rules:
                assert rendered_chain(chain) == chain_text(chain.rules), chain.name
    text = render_iptables(compiled, 4)
    assert "\x00" not in text
    assert f'"DROP ingress {scenarios.PORT_B}"' in text
