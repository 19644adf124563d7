"""Removing a rule must also cut the connections it allowed: the kernel keeps established
connections going until their conntrack entries are deleted.

Each test gets its own lab: a cut connection leaves TCP retransmissions behind that would move
other tests' counters, and deleting the namespaces is what ends them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from sgweb.kernel.runner import SubprocessRunner
from sgweb.kernel.topology import BRIDGE_PER_PORT, SHARED_BRIDGE, remove_namespaces
from tests.kernel.conftest import new_prefix
from tests.kernel.harness import FirewallLab, build_lab
from tests.kernel.test_firewall_e2e import DB_GROUP, PORTS, WEB_GROUP, WEB_PORT, W, state

pytestmark = pytest.mark.kernel


@pytest.fixture(params=[SHARED_BRIDGE, BRIDGE_PER_PORT])
def lab(kernel_runner: SubprocessRunner, request: pytest.FixtureRequest) -> Iterator[FirewallLab]:
    prefix = new_prefix()
    try:
        lab = build_lab(kernel_runner, prefix, PORTS, request.param)
        lab.apply_fresh(state())
        yield lab
    finally:
        remove_namespaces(prefix, kernel_runner)


def _stream_results(handle) -> list[bool]:
    stdout, _ = handle.read_output()
    return [json.loads(line)["ok"] for line in stdout.splitlines() if '"seq"' in line]


def _wait_for_results(handle, count: int, timeout: float = 5.0) -> list[bool]:
    deadline = time.monotonic() + timeout
    while len(results := _stream_results(handle)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return results


def test_a_removed_rule_stops_established_connections_once_conntrack_is_flushed(
    lab: FirewallLab,
) -> None:
    """The kernel keeps an established connection going after its rule is removed; deleting
    the connection's conntrack entries (what the agent does) is what makes removed mean
    removed."""
    from dataclasses import replace

    from sgweb.firewall.compiler import compile_host
    from sgweb.firewall.incremental import diff

    assert lab.compiled is not None
    before_state, before = lab.state, lab.compiled
    server = lab.topology.listen(lab.label(W), "tcp", 8085, echo=True)
    client = lab.topology.stream("outside", WEB_PORT.fixed_ips[0], 8085)
    try:
        flowing = _wait_for_results(client, 3)
        assert len(flowing) >= 3 and all(flowing[:3]), flowing  # all([]) would pass vacuously
        closed = replace(WEB_GROUP, rules=tuple(r for r in WEB_GROUP.rules if r.id != "web-alt"))
        changed = replace(before_state, security_groups=(closed, DB_GROUP))
        after = compile_host(changed)
        assert lab.with_bridges(changed) == changed
        lab.firewall.apply(diff(before, after), rollback=diff(after, before)).raise_for_error()
        lab.state, lab.compiled = lab.with_bridges(changed), after
        seen = len(_stream_results(client))
        still = _wait_for_results(client, seen + 3)
        assert len(still) >= seen + 3, still  # the client is still running and trying
        assert all(still[seen:])  # still flowing: established
        assert lab.firewall.flush_conntrack([WEB_PORT.fixed_ips[0]], protocol="tcp") >= 1
        seen = len(_stream_results(client))
        after_cut = _wait_for_results(client, seen + 3)
        # tries were made after the flush (a client that died would leave an empty tail)
        assert len(after_cut) >= seen + 3, after_cut
        assert not any(after_cut[seen + 1 :])
    finally:
        client.stop()
        server.stop()
        lab.firewall.apply(diff(lab.compiled, before)).raise_for_error()
        lab.state, lab.compiled = before_state, before
