"""Fan-out: one change to a group on many hosts stores each shared piece once (real Redis, DB)."""

from __future__ import annotations

import json

import pytest

from sgweb.firewall import manifest
from sgweb.firewall.compiler import compile_host
from sgweb.firewall.render import render_iptables
from sgweb.hostsync import fanout, publish
from sgweb.hostsync.desired_state import host_state
from sgweb.kernel.apply import HostFirewall
from sgweb.networks import actions as net_actions
from sgweb.networks.models import Host
from sgweb.security import actions
from sgweb.wire import sync as protocol
from tests.agents.fakes import RecordingReporter
from tests.controlplane.factories import group, network_with_subnet, port
from tests.fakerunner import FakeRunner
from tests.personas import *  # noqa: F403  (the personas' fixtures)
from worker.agent import Agent
from worker.store import RedisStore

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

HOSTS = ("compute1", "compute2", "compute3")


@pytest.fixture
def cloud(adam, alice, project_a):
    """Three hosts, two ports each, all in one group that admits its own members (Neutron's
    default group), so every host's state names the group and its members."""
    web = group(alice, project_a, "web")
    actions.create_security_group_rule(
        alice, web, direction="ingress", ethertype="IPv4", remote_group_id=str(web.id)
    )
    network, _ = network_with_subnet(alice, project_a)
    ports = [
        port(adam, project_a, network, host=host, name=f"{host}-{i}", security_groups=[str(web.id)])
        for host in HOSTS
        for i in range(2)
    ]
    for host in HOSTS:
        Host.objects.get_or_create(name=host)
    return {"group": web, "network": network, "ports": ports}


def shared_keys(channel, kind: str) -> set[bytes]:
    return set(channel.redis.scan_iter(f"{channel.prefix}:shared:{kind}:*"))


def stored(channel, host: str) -> protocol.Desired:
    return protocol.parse_desired(channel.redis.get(channel.keys(host).desired))


def agents(channel) -> dict[str, RedisStore]:
    return {host: RedisStore(channel.redis_url, host, channel.prefix) for host in HOSTS}


def test_agents_assemble_exactly_the_state_the_database_describes(sync_channel, cloud) -> None:
    publish.publish_hosts(HOSTS, "first", via=sync_channel)
    for host, store in agents(sync_channel).items():
        desired = store.fetch()
        assert desired is not None and desired.assembled == host_state(host)
        assert desired.digest == manifest.state_digest(host_state(host))
    # One group piece and one member piece for all three hosts; a ports piece each.
    assert len(shared_keys(sync_channel, "sg")) == 1
    assert len(shared_keys(sync_channel, "members")) == 1
    assert len(shared_keys(sync_channel, "ports")) == 3


def test_a_rule_change_sends_each_agent_only_the_new_group_piece(
    sync_channel, cloud, alice
) -> None:
    publish.publish_hosts(HOSTS, "first", via=sync_channel)
    stores = agents(sync_channel)
    for store in stores.values():
        store.fetch()
    ports_before = shared_keys(sync_channel, "ports")
    actions.create_security_group_rule(
        alice, cloud["group"], direction="ingress", protocol="tcp",
        port_range_min=22, port_range_max=22,
    )  # fmt: skip
    results = publish.publish_hosts(HOSTS, "rule added", via=sync_channel, reuse=HOSTS)
    assert all(r.outcome == publish.STORED for r in results)
    assert shared_keys(sync_channel, "ports") == ports_before  # the ports were not rebuilt
    for host, store in stores.items():
        fetched_before = store.cache.fetched
        desired = store.fetch()
        assert desired is not None and desired.assembled == host_state(host)
        # The reconciler's digest of the state built from the database is the stored one.
        assert desired.digest == manifest.state_digest(host_state(host))
        assert store.cache.fetched - fetched_before == 1  # just the changed group


def test_a_member_joining_reaches_every_host_without_rebuilding_their_ports(
    sync_channel, cloud, adam, project_a
) -> None:
    publish.publish_hosts(HOSTS, "first", via=sync_channel)
    ports_before = shared_keys(sync_channel, "ports")
    joined = port(
        adam, project_a, cloud["network"], host="compute1", name="new",
        security_groups=[str(cloud["group"].id)],
    )  # fmt: skip
    # compute1's ports changed: built in full; the others keep their ports piece.
    publish.publish_hosts(HOSTS, "port added", via=sync_channel, reuse=("compute2", "compute3"))
    assert len(shared_keys(sync_channel, "ports") - ports_before) == 1
    address = joined.fixed_ips.get().ip_address
    for host, store in agents(sync_channel).items():
        desired = store.fetch()
        assert desired is not None and desired.assembled == host_state(host)
        assert address in dict(desired.assembled.remote_group_members)[str(cloud["group"].id)]


def test_a_full_publish_overtaken_by_a_publisher_with_older_ports_publishes_again(
    sync_channel, cloud, adam, alice
) -> None:
    """Two control workers interleave: the one publishing a port change takes its revision
    first, the one publishing a rule change (keeping the stored, older ports) stores a higher
    revision before it. The newest ports must still end up stored."""
    publish.publish_hosts(["compute1"], "first", via=sync_channel)
    net_actions.update_port(adam, cloud["ports"][0], name="renamed")
    actions.create_security_group_rule(
        alice,
        cloud["group"],
        direction="egress",
        protocol="udp",
        port_range_min=53,
        port_range_max=53,
    )
    raced = []

    def build_after_the_other_publisher(name: str):
        if not raced:
            raced.append(fanout.publish_many([name], "rule change", via=sync_channel, reuse=[name]))
        return host_state(name)

    (outcome,) = fanout.publish_many(
        ["compute1"], "port renamed", via=sync_channel, builder=build_after_the_other_publisher
    )
    (overtaking,) = raced[0]
    assert overtaking.outcome == fanout.STORED and outcome.revision > overtaking.revision
    desired = agents(sync_channel)["compute1"].fetch()
    assert desired is not None and desired.assembled == host_state("compute1")
    assert any(p.name == "renamed" for p in desired.assembled.ports)


def a_day_passes(channel, host: str, days: int = 1) -> None:
    """The stored document's pieces were last made sure of a refresh period ago."""
    key = channel.keys(host).desired
    document = json.loads(channel.redis.get(key))
    document["refreshed_at"] -= days * protocol.PIECES_REFRESH_S
    channel.redis.set(key, json.dumps(document))


def test_a_kept_ports_piece_has_its_expiry_refreshed_once_a_day_not_every_change(
    sync_channel, cloud, alice
) -> None:
    def rule_change(port: int) -> None:
        actions.create_security_group_rule(
            alice, cloud["group"], direction="ingress", protocol="tcp",
            port_range_min=port, port_range_max=port,
        )  # fmt: skip
        publish.publish_hosts(HOSTS, "rule added", via=sync_channel, reuse=HOSTS)

    publish.publish_hosts(HOSTS, "first", via=sync_channel)
    stamp = stored(sync_channel, "compute1").refreshed_at
    for key in shared_keys(sync_channel, "ports"):
        sync_channel.redis.expire(key, 60)
    rule_change(22)
    assert stored(sync_channel, "compute1").refreshed_at == stamp
    assert all(sync_channel.redis.ttl(k) <= 60 for k in shared_keys(sync_channel, "ports"))
    a_day_passes(sync_channel, "compute1")
    a_day_passes(sync_channel, "compute2", days=-1)  # a control worker whose clock is ahead
    rule_change(23)
    assert stored(sync_channel, "compute1").refreshed_at >= stamp
    assert (
        stored(sync_channel, "compute2").refreshed_at
        == stored(sync_channel, "compute1").refreshed_at
    )
    ttls = sorted(sync_channel.redis.ttl(k) for k in shared_keys(sync_channel, "ports"))
    assert ttls[0] <= 60 < protocol.SHARED_TTL_S - 60 < ttls[1]  # compute3's alone kept its TTL


def test_an_expired_ports_piece_is_stored_again_by_the_publish_that_refreshes_it(
    sync_channel, cloud
) -> None:
    publish.publish_hosts(HOSTS, "first", via=sync_channel)
    for key in shared_keys(sync_channel, "ports"):
        sync_channel.redis.delete(key)
    for host in HOSTS:
        a_day_passes(sync_channel, host)
    # A reusing publish refreshing the ports piece finds it gone and builds the host in full.
    publish.publish_hosts(HOSTS, "again", via=sync_channel, reuse=HOSTS)
    for host, store in agents(sync_channel).items():
        desired = store.fetch()
        assert desired is not None and desired.assembled == host_state(host)


def test_a_ports_piece_lost_within_the_day_costs_a_fresh_agent_one_asked_for_publish(
    sync_channel, cloud
) -> None:
    """Evicted between refreshes: the reusing publish does not look, so a fresh agent finds it
    gone, applies nothing and asks; that publish (in full) stores it again."""
    publish.publish_hosts(["compute1"], "first", via=sync_channel)
    for key in shared_keys(sync_channel, "ports"):
        sync_channel.redis.delete(key)
    publish.publish_hosts(["compute1"], "rule change", via=sync_channel, reuse=["compute1"])
    runner, reporter = FakeRunner(), RecordingReporter()
    store = RedisStore(sync_channel.redis_url, "compute1", sync_channel.prefix)
    agent = Agent("compute1", store, HostFirewall(runner, "sgwt-fanout"), reporter)
    assert agent.sync(None, "start").action == "failed" and not runner.calls
    assert reporter.requests and "shared pieces" in reporter.requests[0]
    (told,) = publish.publish_hosts(["compute1"], "asked", via=sync_channel)
    assert agent.sync(told.revision, "nudged").action == "applied"


def test_an_agent_whose_pieces_are_gone_asks_to_be_published_and_applies_nothing(
    sync_channel, cloud
) -> None:
    """A fresh agent finds the manifest but a piece expired: it applies nothing, says why, and
    asks the control plane for a publish (which stores every piece again)."""
    publish.publish_hosts(["compute1"], "first", via=sync_channel)
    for key in shared_keys(sync_channel, "sg"):
        sync_channel.redis.delete(key)
    runner, reporter = FakeRunner(), RecordingReporter()
    store = RedisStore(sync_channel.redis_url, "compute1", sync_channel.prefix)
    agent = Agent("compute1", store, HostFirewall(runner, "sgwt-fanout"), reporter)
    outcome = agent.sync(None, "start")
    assert outcome.action == "failed" and not runner.calls
    assert reporter.requests and "shared pieces" in reporter.requests[0]
    (told,) = publish.publish_hosts(["compute1"], "asked", via=sync_channel)
    assert agent.sync(told.revision, "nudged").action == "applied"


def test_the_article_layout_setting_reaches_the_agents_through_redis(
    sync_channel, cloud, settings
) -> None:
    """SGWEB_FIREWALL_COMPAT is a control-plane setting: each agent assembles it from its
    manifest and compiles the article's DHCP order (every DHCP request before anti-spoofing)."""
    settings.SGWEB_FIREWALL_COMPAT = "article"
    publish.publish_hosts(HOSTS, "article layout", via=sync_channel)
    for host, store in agents(sync_channel).items():
        desired = store.fetch()
        assert desired is not None and desired.assembled.compat == "article"
        assert desired.assembled == host_state(host)
        egress = [
            line
            for line in render_iptables(compile_host(desired.assembled), 4).splitlines()
            if line.startswith("-A neutron-openvswi-o")
        ]
        assert "--sport 68 --dport 67 -j RETURN" in egress[0]  # no 0.0.0.0 -> 255.255.255.255
        assert "-s 0.0.0.0/32" not in egress[0]
