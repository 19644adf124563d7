"""Counters over netlink agree with `iptables -L -v -x -n`, position by position."""

from __future__ import annotations

import os
import secrets
import sys

import pytest

from sgweb.kernel.apply import HostFirewall
from sgweb.kernel.netns import remove_namespace
from sgweb.kernel.nftcounters import NftCounterReader
from sgweb.kernel.runner import default_runner
from sgweb.kernel.traffic import PROBE_SCRIPT

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


def test_the_accounting_read_of_whole_buffers_matches_the_listing_even_after_an_unread_dump(
    netns,
):
    """`read_chain_pairs` searches whole dump buffers for counters: a chain of several 32 kB
    buffers reads rule by rule what the listing shows, a missing chain reads empty, and a dump
    nobody read (left in the socket) fails the next read, which drops the socket: its buffers
    are never taken for another chain's."""
    from sgweb.kernel.nftcounters import _rule_dump_request

    runner = default_runner()
    big = "neutron-openvswi-osgwt"
    lines = [f":{big} -"] + [
        f"[{n}:{n * 60}] -A {big} -s 192.0.2.{n % 250 + 1}/32 -p tcp --dport {1000 + n} "
        f'-m comment --comment "sg-rule {n}" -j RETURN'
        for n in range(400)
    ]
    runner.run(["iptables-restore", "-c", "-n"], input="*filter\n" + "\n".join(lines) +
               "\nCOMMIT\n", netns=netns)  # fmt: skip
    reader = NftCounterReader(netns)
    try:
        firewall = HostFirewall(runner, netns)
        listed = [(c.packets, c.bytes) for c in firewall.read_chain(big)]
        assert len(listed) == 400 and listed[399] == (399, 399 * 60)
        assert reader.read_chain_pairs(big) == listed
        assert reader.read_chain_pairs("neutron-openvswi-inothere") == []
        reader._sock().send(_rule_dump_request(big, 4, "filter", 0xFFFF))  # never read
        small = [(c.packets, c.bytes) for c in firewall.read_chain("neutron-openvswi-isgwt")]
        with pytest.raises(OSError):  # the kernel: a dump is still running on that socket
            reader.read_chain_pairs("neutron-openvswi-isgwt")
        assert reader.read_chain_pairs("neutron-openvswi-isgwt") == small  # a new socket
        assert reader.read_chain_pairs(big) == listed
    finally:
        reader.close()


class _BrokenSocket:
    """Stands in for a socket whose dump failed half way (the kernel may still be sending)."""

    closed = False

    def send(self, data: bytes) -> None:
        raise OSError("the dump failed half way")

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("read", ["read_chain", "read_chain_fast", "read_chain_targets"])
def test_a_read_that_failed_half_way_does_not_spoil_the_next_one(netns, read):
    reader = NftCounterReader(netns)
    chain = "neutron-openvswi-isgwt"
    try:
        expected = getattr(reader, read)(chain)
        broken = _BrokenSocket()
        reader._socket = broken  # type: ignore[assignment]
        reader._wire = type("Wire", (), {"send": broken.send})()  # type: ignore[assignment]
        with pytest.raises(OSError):
            getattr(reader, read)(chain)
        assert broken.closed
        assert getattr(reader, read)(chain) == expected
    finally:
        reader.close()


PACKET_RULES = """*filter
:sgwt-acct -
-A OUTPUT -j sgwt-acct
-A sgwt-acct -p {icmp} -m comment --comment "counter" -j RETURN
-A sgwt-acct -p tcp --dport 22 -m state --state INVALID -j DROP
-A sgwt-acct -p {icmp} -m limit --limit 1000/s -m comment --comment "sg-rule counter x" -j RETURN
-A sgwt-acct -j RETURN
COMMIT
"""


@pytest.fixture
def pinged():
    """A namespace whose OUTPUT jumps into a small chain of both families, after three real
    pings of each family to an address of its own (192.0.2.1, 2001:db8::1 on its loopback)."""
    runner = default_runner()
    name = f"sgwt-{os.getpid()}-{secrets.token_hex(3)}-pk"
    runner.run(["ip", "netns", "add", name])
    try:
        for command in (
            ["ip", "link", "set", "lo", "up"],
            ["ip", "address", "add", "192.0.2.1/32", "dev", "lo"],
            ["ip", "address", "add", "2001:db8::1/128", "dev", "lo", "nodad"],
        ):
            runner.run(command, netns=name)
        runner.run(["iptables-restore", "-n"], input=PACKET_RULES.format(icmp="icmp"), netns=name)
        runner.run(
            ["ip6tables-restore", "-n"], input=PACKET_RULES.format(icmp="ipv6-icmp"), netns=name
        )
        for address in ("192.0.2.1", "2001:db8::1"):
            echo = [sys.executable, "-I", PROBE_SCRIPT, "icmp", address, "--count", "3"]
            runner.run(echo, netns=name)  # fails unless every request was answered
        yield name
    finally:
        remove_namespace(name, runner)


@pytest.mark.parametrize("family", [4, 6])
def test_the_accounting_read_of_real_packets_agrees_with_the_listing_and_the_full_parse(
    pinged, family
):
    """Counts made by real pings (not restored ones), in rules whose comment says "counter"
    (iptables-nft keeps comments in the rule's user data; the reader must not take them for a
    counter expression): the accounting's whole-buffer search reads, position by position, what
    `iptables -L -v -x` and the full attribute walk read."""
    reader = NftCounterReader(pinged)
    try:
        listed = HostFirewall(default_runner(), pinged).read_chain("sgwt-acct", family)
        pairs = reader.read_chain_pairs("sgwt-acct", family)
        walked = reader.read_chain("sgwt-acct", family)
    finally:
        reader.close()
    assert pairs == [(c.packets, c.bytes) for c in listed] == [(c.packets, c.bytes) for c in walked]
    assert len(pairs) == 4
    echoes = pairs[0][0]  # the requests and the replies leave through OUTPUT: 3 each, at least
    assert echoes >= 6 and pairs[0][1] >= echoes * 28  # an IP header and an ICMP one, at least
    assert pairs[1] == (0, 0) and pairs[2] == (0, 0)  # nothing reached the rules after a RETURN


def test_a_dump_the_kernel_never_answers_fails_in_time_naming_its_chain(netns, monkeypatch):
    """The accounting and live threads must not hang for good on a silent socket: a request the
    kernel does not answer (here a NOOP message, which netlink ignores) fails after the read
    timeout with the chain's name, and the next read works on a new socket."""
    from sgweb.kernel import nftcounters

    def silent(chain: str, family: int, table: str, sequence: int) -> bytes:
        return nftcounters._REQUEST_HEADER.pack(16, 1, nftcounters.NLM_F_REQUEST, sequence, 0)

    monkeypatch.setattr(nftcounters, "READ_TIMEOUT_S", 0.2)
    reader = NftCounterReader(netns)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(nftcounters, "_rule_dump_request", silent)
            with pytest.raises(TimeoutError, match="neutron-openvswi-isgwt"):
                reader.read_chain_columns("neutron-openvswi-isgwt")
        packets, sizes = reader.read_chain_columns("neutron-openvswi-isgwt")
        assert list(zip(packets, sizes, strict=True)) == [(5, 300), (0, 0), (7, 7000), (2, 120)]
    finally:
        reader.close()
