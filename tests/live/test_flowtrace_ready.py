"""FlowTracer waits until xtables-monitor has joined the nf_tables trace group, not a fixed sleep.

The kernel test starts a tracer with no settle time at all and sends a packet the moment
`start()` returns: with the old sleep(settle_s) this lost the first packet whenever the monitor
was slower to subscribe than the probe was to send ("the kernel saw no packet of this flow").
"""

from __future__ import annotations

import os
import sys

import pytest

from sgweb.kernel.flowtrace import FlowTracer
from sgweb.kernel.netlinkready import (
    NotSubscribed,
    parse_proc_netlink,
    subscribed_to_trace,
    wait_subscribed,
)
from sgweb.kernel.runner import SubprocessRunner
from sgweb.kernel.traffic import PROBE_SCRIPT
from tests.kernel.conftest import kernel_runner, netns_prefix, scratch_netns  # noqa: F401

PROC_NETLINK = """\
sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
00000000f9e69dda 0   0          00000000 0        0        0     2        0        4
00000000481af7e5 12  4242       00000101 0        0        0     2        0        90210
0000000012345678 12  4294967001 00000000 0        0        0     2        0        90211
"""


def test_proc_netlink_rows_are_parsed_with_their_group_bitmask() -> None:
    sockets = parse_proc_netlink(PROC_NETLINK)
    assert [(s.protocol, s.port_id, s.groups, s.inode) for s in sockets] == [
        (0, 0, 0, 4),
        (12, 4242, 0x101, 90210),
        (12, 4294967001, 0, 90211),
    ]
    assert sockets[1].groups & 0x100  # NFNLGRP_NFTRACE (9) is bit 8


def test_a_process_without_a_trace_socket_is_not_subscribed_and_waiting_is_bounded() -> None:
    assert not subscribed_to_trace(os.getpid())
    with pytest.raises(NotSubscribed, match=r"within 0\.05 s"):
        wait_subscribed(os.getpid(), timeout=0.05)
    with pytest.raises(NotSubscribed, match="exited"):
        wait_subscribed(os.getpid(), timeout=5, alive=lambda: False)


@pytest.mark.kernel
def test_the_first_packet_after_start_is_traced_without_any_settle_time(
    kernel_runner: SubprocessRunner,  # noqa: F811
    scratch_netns: str,  # noqa: F811
) -> None:
    match = ["-s", "127.0.0.1", "-d", "127.0.0.1", "-p", "icmp"]
    for attempt in range(5):  # the race was intermittent: every attempt must see its packet
        tracer = FlowTracer(kernel_runner, scratch_netns, matches=[match], families=(4,),
                            settle_s=0.0)  # fmt: skip
        tracer.start()
        try:
            monitor = tracer._monitor
            assert monitor is not None and subscribed_to_trace(monitor.pid)
            assert tracer.ready_after_s is not None and tracer.ready_after_s < 2.0
            probe = [sys.executable, "-I", PROBE_SCRIPT, "icmp", "127.0.0.1"]
            kernel_runner.run([*probe, "--timeout", "1"], netns=scratch_netns, check=False)
        finally:
            packets = tracer.stop(linger_s=0.3)
        assert not tracer.has_trace_rules()
        assert any(p.src == "127.0.0.1" for p in packets), f"attempt {attempt}: nothing traced"
