"""Packet-log rules on a real kernel: real pings and TCP connects through a logged port pass
its NFLOG rules exactly where the tracer says (the DROP log in front of the default drop, the
ACCEPT log in front of the rule that allowed it), and the verdicts stay what they were."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from sgweb.firewall import names
from sgweb.firewall.ir import ORIGIN_LOG_ACCEPT, ORIGIN_LOG_DROP, CompiledHost
from sgweb.firewall.model import HostState, LogSettings
from sgweb.kernel.runner import SubprocessRunner
from sgweb.kernel.topology import SHARED_BRIDGE, remove_namespaces
from tests.kernel.conftest import new_prefix
from tests.kernel.harness import FirewallLab, HitKey, build_lab
from tests.kernel.test_firewall_e2e import PORTS, WEB_PORT, state

pytestmark = pytest.mark.kernel


def logged_state() -> HostState:
    base = state()
    ports = tuple(replace(p, log_events="ALL") if p.id == WEB_PORT.id else p for p in base.ports)
    return replace(base, ports=ports)


@pytest.fixture
def lab(kernel_runner: SubprocessRunner) -> Iterator[FirewallLab]:
    prefix = new_prefix()
    try:
        lab = build_lab(kernel_runner, prefix, PORTS, SHARED_BRIDGE)
        lab.apply_fresh(logged_state())
        lab.settle()
        yield lab
    finally:
        remove_namespaces(prefix, kernel_runner)


def log_kinds(compiled: CompiledHost | None, hits: dict[HitKey, int]) -> dict[str, str | None]:
    """origin kind -> rule id, for the packet-log rules among the kernel's hits."""
    assert compiled is not None
    found = {}
    for table_name, chain_name, position in hits:
        table = compiled.family(4).table(table_name)
        chain = table.chain(chain_name) if table else None
        if chain is None:
            continue
        origin = chain.rules[position - 1].origin
        if origin.kind in (ORIGIN_LOG_ACCEPT, ORIGIN_LOG_DROP):
            found[origin.kind] = origin.rule_id
    return found


def test_an_allowed_ping_passes_the_accept_log_of_the_rule_that_allowed_it(
    lab: FirewallLab,
) -> None:
    seen = lab.ping("outside", WEB_PORT.id)
    seen.assert_agrees(expected_ok=True)
    assert log_kinds(lab.compiled, dict(seen.kernel_hits)) == {ORIGIN_LOG_ACCEPT: "web-icmp"}


def test_a_blocked_tcp_connect_passes_the_drop_log_in_front_of_the_default_drop(
    lab: FirewallLab,
) -> None:
    seen = lab.tcp("outside", WEB_PORT.id, 9)
    seen.assert_agrees(expected_ok=False)
    assert ORIGIN_LOG_DROP in log_kinds(lab.compiled, dict(seen.kernel_hits))


_FLOOD = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "for _ in range(int(sys.argv[2])):\n"
    "    s.sendto(b'x', (sys.argv[1], 9))\n"
)


def test_a_flood_at_a_logged_port_is_logged_within_the_rate_limit(
    kernel_runner: SubprocessRunner,
) -> None:
    prefix = new_prefix()
    try:
        lab = build_lab(kernel_runner, prefix, PORTS, SHARED_BRIDGE)
        compiled = lab.apply_fresh(
            replace(logged_state(), log_settings=LogSettings(rate=1, burst=5))
        )
        lab.settle()
        chain = names.ingress_chain(compiled.chain_prefix, WEB_PORT.id)
        rules = compiled.v4.table("filter").chain(chain).rules  # type: ignore[union-attr]
        log_at = next(i for i, r in enumerate(rules) if r.origin.kind == ORIGIN_LOG_DROP)
        before = lab.firewall.read_chain(chain)
        started = time.monotonic()
        outside = lab.topology.ns(lab._endpoint_label("outside"))
        kernel_runner.run(
            [sys.executable, "-c", _FLOOD, WEB_PORT.fixed_ips[0], "2000"], netns=outside
        )
        after = lab.firewall.read_chain(chain)
        elapsed = time.monotonic() - started
        logged = after[log_at].packets - before[log_at].packets
        dropped = after[log_at + 1].packets - before[log_at + 1].packets
        # Every datagram reached the default drop; the log took the burst and 1/s after it.
        assert dropped >= 1000
        assert 5 <= logged <= 5 + int(elapsed) + 1, (logged, elapsed)
    finally:
        remove_namespaces(prefix, kernel_runner)
