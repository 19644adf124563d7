"""Cutting connections in bulk over netlink: exactly the entries a batch of cuts names go.

Entries are put into a scratch namespace's real conntrack table with `conntrack -I` (the test
tool; the product starts no process for this), in several zones and protocols, then one
`ConntrackCutter.cut` call must delete the named ones and leave every other entry alone.
A real established connection being cut is proved in test_conntrack_cut.py.
"""

from __future__ import annotations

import pytest

from sgweb.kernel.conntrack import ConntrackCutter
from sgweb.kernel.runner import SubprocessRunner
from worker.conntrack import Cut

pytestmark = pytest.mark.kernel

VM = "192.0.2.10"
PEER = "198.51.100.7"
VM6 = "2001:db8::10"
PEER6 = "2001:db8:1::7"


def _insert(runner: SubprocessRunner, netns: str, source: str, destination: str,
            protocol: str, dport: int, zone: int, sport: int = 40000) -> None:  # fmt: skip
    argv = ["conntrack", "-I", "-s", source, "-d", destination, "-p", protocol, "-t", "120",
            "-w", str(zone), "--sport", str(sport), "--dport", str(dport)]  # fmt: skip
    if protocol == "tcp":
        argv += ["--state", "ESTABLISHED", "-u", "ASSURED"]
    runner.run(argv, netns=netns)


def _entries(runner: SubprocessRunner, netns: str) -> set[tuple[str, str, str, str]]:
    """(protocol, orig src, orig dport, zone) of every entry, IPv4 and IPv6."""
    found = set()
    for family in ("ipv4", "ipv6"):
        listed = runner.run(["conntrack", "-L", "-f", family], netns=netns, check=False).stdout
        for line in listed.splitlines():
            fields: dict[str, str] = {}
            for part in line.split():  # the original direction comes first
                if "=" in part:
                    fields.setdefault(*part.split("=", 1))
            found.add((line.split()[0], fields["src"], fields["dport"], fields.get("zone", "0")))
    return found


def test_one_bulk_cut_deletes_exactly_the_entries_its_cuts_name(
    kernel_runner: SubprocessRunner, scratch_netns: str
) -> None:
    for port in range(1000, 1020):  # the lost rules' ports, and some that stay allowed
        _insert(kernel_runner, scratch_netns, PEER, VM, "tcp", port, zone=5)
    _insert(kernel_runner, scratch_netns, VM, PEER, "udp", 53, zone=5)  # egress, stays
    _insert(kernel_runner, scratch_netns, PEER, VM, "tcp", 1000, zone=6)  # other zone, stays
    _insert(kernel_runner, scratch_netns, PEER6, VM6, "tcp", 22, zone=5)
    _insert(kernel_runner, scratch_netns, PEER6, VM6, "tcp", 80, zone=5)  # stays
    lost = range(1000, 1010)
    cuts = [Cut("port-a", (VM,), 5, "tcp", port, "ingress rule removed") for port in lost]
    cuts.append(Cut("port-a", (VM6,), 5, "tcp", 22, "ingress rule removed"))

    cutter = ConntrackCutter(scratch_netns)
    try:
        result = cutter.cut(cuts)
        assert result.deleted == 11 and not result.errors, result
        # IPv4: two dumps for the address; IPv6: one of its zone. Not one per rule.
        assert result.dumps == 3
        left = _entries(kernel_runner, scratch_netns)
        assert {int(dport) for proto, src, dport, zone in left if src == PEER} == set(
            range(1010, 1020)
        ) | {1000}
        assert ("tcp", PEER, "1000", "6") in left and ("udp", VM, "53", "5") in left
        assert ("tcp", PEER6, "80", "5") in left and ("tcp", PEER6, "22", "5") not in left
        assert cutter.cut(cuts).deleted == 0  # nothing left to cut, and no error
    finally:
        cutter.close()


def test_a_protocol_wide_cut_takes_every_entry_of_the_address_in_its_zone(
    kernel_runner: SubprocessRunner, scratch_netns: str
) -> None:
    _insert(kernel_runner, scratch_netns, PEER, VM, "tcp", 22, zone=5)
    _insert(kernel_runner, scratch_netns, VM, PEER, "udp", 53, zone=5)
    _insert(kernel_runner, scratch_netns, PEER, "192.0.2.11", "tcp", 22, zone=5)  # other VM
    cutter = ConntrackCutter(scratch_netns)
    try:
        assert cutter.cut([Cut("port-a", (VM,), 5, why="port security enabled")]).deleted == 2
    finally:
        cutter.close()
    assert _entries(kernel_runner, scratch_netns) == {("tcp", PEER, "22", "5")}
