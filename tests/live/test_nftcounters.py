"""Counters over netlink agree with `iptables -L -v -x -n`, position by position."""

from __future__ import annotations

import os
import secrets

import pytest

from sgweb.kernel.apply import HostFirewall
from sgweb.kernel.netns import remove_namespace
from sgweb.kernel.nftcounters import NftCounterReader
from sgweb.kernel.runner import default_runner

pytestmark = pytest.mark.kernel

RULES = """*filter
:neutron-openvswi-isgwt -
[5:300] -A neutron-openvswi-isgwt -p tcp --dport 22 -j RETURN
[0:0] -A neutron-openvswi-isgwt -m state --state INVALID -j DROP
[7:7000] -A neutron-openvswi-isgwt -m comment --comment "sg-rule x" -j RETURN
[2:120] -A neutron-openvswi-isgwt -j DROP
COMMIT
"""


@pytest.fixture
def netns():
    runner = default_runner()
    name = f"sgwt-{os.getpid()}-{secrets.token_hex(3)}-nl"
    runner.run(["ip", "netns", "add", name])
    try:
        runner.run(["iptables-restore", "-c"], input=RULES, netns=name)
        yield name
    finally:
        remove_namespace(name, runner)


def test_netlink_counters_match_iptables_listing_and_a_missing_chain_reads_empty(netns):
    reader = NftCounterReader(netns)
    try:
        assert reader.available()
        chain = "neutron-openvswi-isgwt"
        by_netlink = reader.read_chains([chain, "neutron-openvswi-inothere"])
        by_listing = HostFirewall(default_runner(), netns).read_chain(chain)
        assert by_netlink[chain] == by_listing
        assert [(c.packets, c.bytes) for c in by_listing] == [(5, 300), (0, 0), (7, 7000), (2, 120)]
        assert by_netlink["neutron-openvswi-inothere"] == []
        assert reader.read_chain(chain, family=6) == []
    finally:
        reader.close()


def test_the_counter_shortcut_reads_what_walking_every_attribute_reads(netns, monkeypatch):
    from sgweb.kernel import nftcounters

    seen = []
    shortcut = nftcounters.rule_counter

    def both(payload: bytes):
        quick = shortcut(payload)
        seen.append((quick, nftcounters._walked_rule_counter(payload)))
        return quick

    reader = NftCounterReader(netns)
    try:
        monkeypatch.setattr(nftcounters, "rule_counter", both)
        reader.read_chain("neutron-openvswi-isgwt")
    finally:
        reader.close()
    assert len(seen) == 4
    assert all(quick == walked and quick is not None for quick, walked in seen)
    assert [(quick.packets, quick.bytes) for quick, _ in seen][2] == (7, 7000)
