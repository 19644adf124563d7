"""The network node agent's rule counters for the router page: read only while a page watches,
summed per firewall rule over the chains it is in (real Redis)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from sgweb.hostsync.routers_publish import watch_rule_hits
from sgweb.kernel.readback import Counter
from sgweb.wire import routers as wire
from worker.router_threads import RouterCounters

pytestmark = pytest.mark.redis


class CountingAgent:
    host = "network1"

    def __init__(self) -> None:
        self.reads = 0

    def rule_hits(self) -> dict:
        self.reads += 1
        seen = [("deny-db", "i-in", 3), ("deny-db", "o-out", 4), ("ssh", "i-in", 1)]
        return {"r1": [hit(rule, chain, packets) for rule, chain, packets in seen]}


def hit(rule: str, chain: str, packets: int) -> SimpleNamespace:
    origin = SimpleNamespace(rule_id=rule)
    return SimpleNamespace(origin=origin, chain=chain, counter=Counter(packets, packets * 60))


def test_a_rules_counters_are_summed_over_its_chains_and_the_page_reads_them(sync_channel):
    agent = CountingAgent()
    counters = RouterCounters(agent, sync_channel.redis, sync_channel.prefix)  # type: ignore[arg-type]
    assert watch_rule_hits("network1", via=sync_channel) is None, "nothing read yet"
    counters.publish()
    document = watch_rule_hits("network1", via=sync_channel)
    assert document is not None
    assert document["routers"] == {"r1": {"deny-db": [7, 420], "ssh": [1, 60]}}
    keys = wire.router_keys("network1", sync_channel.prefix)
    assert 0 < sync_channel.redis.ttl(keys.hits) <= wire.HITS_TTL_S
    assert json.loads(sync_channel.redis.get(keys.hits))["at"] > 0


def test_the_agent_reads_no_counters_while_no_page_watches(sync_channel):
    agent = CountingAgent()
    counters = RouterCounters(agent, sync_channel.redis, sync_channel.prefix)  # type: ignore[arg-type]
    counters.start()
    try:
        counters.stopping.wait(wire.HITS_EVERY_S * 1.5)
        assert agent.reads == 0
        watch_rule_hits("network1", via=sync_channel)
        counters.stopping.wait(wire.HITS_EVERY_S * 2.5)
        assert agent.reads >= 1
    finally:
        counters.stop()
