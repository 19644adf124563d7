"""A kernel trace is read whole, or says that it was not.

The allowed-TCP proof in the browser test sometimes read "the kernel traced 1 traversal but saw
no ACCEPT or DROP" (and sometimes "saw no packet"): one probe across two bridges is a burst of a
few hundred trace events; xtables-monitor kept the default 208 KiB receive buffer, fell behind
(it asks the kernel for each rule's text), the kernel dropped events, and the monitor exited on
ENOBUFS with the rest of its queue unread. A monitor still behind when the TRACE rule was
deleted exited too ("No such file or directory": it looks each traced rule up by handle).
The kernel tests here hold the monitor still (SIGSTOP) while a burst is traced: what the
monitor would do on a loaded host, made certain.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator

import pytest

from sgweb.kernel import ktrace
from sgweb.kernel.flowtrace import FlowTracer
from sgweb.kernel.netlinkready import TRACE_RCVBUF, parse_proc_netlink, trace_socket
from sgweb.kernel.runner import CommandResult, SubprocessRunner
from tests.fakerunner import FakeRunner, RecordedCall
from tests.kernel.conftest import kernel_runner, netns_prefix, scratch_netns  # noqa: F401

LOOPBACK = ["-s", "127.0.0.1", "-d", "127.0.0.1", "-p", "icmp"]
CUT_SHORT = """\
PACKET: 2 8691f585 IN=qbr11111111-aa SRC=192.0.2.11 DST=192.0.2.12 LEN=60 SPORT=34615 DPORT=5432 SYN
 TRACE: 2 8691f585 raw:PREROUTING:rule:0xe:CONTINUE  -4 -t raw -A PREROUTING -s 192.0.2.11/32 -d 192.0.2.12/32 -p tcp -m comment --comment sgweb-trace-82940f58 -j TRACE
"""  # noqa: E501  (recorded: the whole output of a monitor that exited on ENOBUFS)
ENOBUFS = "cannot receive from nfnetlink socket: No buffer space available\n"


def test_the_netlink_table_gives_each_sockets_queued_bytes_and_drops() -> None:
    rows = parse_proc_netlink(
        "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n"
        "00000000481af7e5 12  4242       00000100 215040   0        0     2        37       90210\n"
    )
    assert [(row.rmem, row.drops) for row in rows] == [(215040, 37)]


def _scripted_monitor(runner: FakeRunner, result: CommandResult) -> list[str]:
    """The monitor answers `result`; returns the order in which it stopped and rules went."""
    order: list[str] = []
    runner.on(["stdbuf", "-oL", "xtables-monitor"], respond=lambda call: result)

    def deleted(call: RecordedCall) -> CommandResult:
        stopped = all(process.stopped for process in runner.spawned)
        order.append("rule deleted after the monitor stopped" if stopped else "rule deleted first")
        return CommandResult(call.argv, 0, "", "", 0.0, call.netns)

    runner.on(["iptables", "-w", "-t", "raw", "-D"], respond=deleted)
    return order


def test_a_monitor_that_exited_on_its_own_makes_the_trace_lost_with_its_words() -> None:
    runner = FakeRunner()
    _scripted_monitor(runner, CommandResult(("xtables-monitor",), 1, CUT_SHORT, ENOBUFS, 0.1))
    tracer = FlowTracer(runner, "host1", matches=[LOOPBACK]).start()
    packets = tracer.stop(linger_s=0)
    assert [packet.verdict for packet in packets] == [None]  # a traversal cut before its verdict
    assert tracer.lost == (
        "the trace monitor stopped early: cannot receive from nfnetlink socket: No buffer space "
        "available"
    )


def test_the_monitor_is_stopped_before_its_trace_rules_are_deleted() -> None:
    runner = FakeRunner()
    order = _scripted_monitor(runner, CommandResult(("xtables-monitor",), 0, "", "", 0.1))
    tracer = FlowTracer(
        runner, "host1", matches=[LOOPBACK, ["-s", "127.0.0.2", "-d", "127.0.0.1", "-p", "icmp"]]
    ).start()
    tracer.stop(linger_s=0)
    assert order == ["rule deleted after the monitor stopped"] * 2
    assert tracer.lost is None


def test_a_peek_reads_only_the_lines_the_monitor_has_finished_writing() -> None:
    runner = FakeRunner()
    being_written = CUT_SHORT + " TRACE: 2 8691f585 raw:PREROUTING:policy:ACC"
    runner.on(["stdbuf", "-oL", "xtables-monitor"], stdout=being_written)
    tracer = FlowTracer(runner, "host1", matches=[LOOPBACK]).start()
    (packet,) = tracer.peek()
    assert [step.verdict for step in packet.steps] == ["CONTINUE"]
    tracer.stop(linger_s=0)


@pytest.fixture
def loopback_ns(
    kernel_runner: SubprocessRunner,  # noqa: F811
    scratch_netns: str,  # noqa: F811
) -> Iterator[str]:
    """A namespace whose filter table accepts loopback ICMP (a verdict for every traversal)."""
    kernel_runner.run(["iptables", "-w", "-A", "INPUT", "-p", "icmp", "-j", "ACCEPT"],
                      netns=scratch_netns)  # fmt: skip
    yield scratch_netns


# 300 echo requests at once on a raw socket (the kernel answers each): the burst, in one process.
BURST = """
import socket, struct
def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
for sequence in range(300):
    header = struct.pack("!BBHHH", 8, 0, 0, 0x5157, sequence)
    packet = struct.pack("!BBHHH", 8, 0, checksum(header), 0x5157, sequence)
    sock.sendto(packet, ("127.0.0.1", 0))
"""


def _burst_while_held(runner: SubprocessRunner, netns: str, tracer: FlowTracer) -> None:
    """300 echoes and their replies (about 1800 events: several times what 208 KiB holds) while
    the monitor cannot run; it runs again half a second later, while `stop` is waiting."""
    monitor = tracer._monitor
    assert monitor is not None
    pid = monitor.pid  # type: ignore[attr-defined]
    os.kill(pid, signal.SIGSTOP)
    try:
        runner.run([sys.executable, "-I", "-c", BURST], netns=netns)
    finally:
        threading.Timer(0.5, os.kill, (pid, signal.SIGCONT)).start()


@pytest.mark.kernel
def test_a_burst_traced_while_the_monitor_is_held_is_read_whole_before_the_rules_go(
    kernel_runner: SubprocessRunner,  # noqa: F811
    loopback_ns: str,
) -> None:
    tracer = FlowTracer(kernel_runner, loopback_ns, matches=[LOOPBACK]).start()
    try:
        assert tracer.receive_buffer is not None and tracer.receive_buffer >= TRACE_RCVBUF
        _burst_while_held(kernel_runner, loopback_ns, tracer)
    finally:
        packets = tracer.stop(linger_s=0)
    assert tracer.lost is None
    assert not tracer.has_trace_rules()
    assert len(packets) == 600, "each echo and each reply, one traversal apiece"
    assert {packet.verdict for packet in packets} == {"ACCEPT"}


@pytest.mark.kernel
def test_a_trace_that_lost_events_says_so_and_is_never_a_short_trace(
    kernel_runner: SubprocessRunner,  # noqa: F811
    loopback_ns: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The monitor as it was before: the default receive buffer, which this burst overruns.
    def keep_default(pid: int) -> int:
        raise OSError("kept the default buffer")

    monkeypatch.setattr(ktrace, "grow_receive_buffer", keep_default)
    tracer = FlowTracer(kernel_runner, loopback_ns, matches=[LOOPBACK]).start()
    try:
        monitor = tracer._monitor
        assert monitor is not None
        found = trace_socket(monitor.pid)  # type: ignore[attr-defined]
        assert found is not None
        _burst_while_held(kernel_runner, loopback_ns, tracer)
    finally:
        packets = tracer.stop(linger_s=0)
    assert tracer.lost is not None, f"{len(packets)} traversals and nothing said about the rest"
    assert len(packets) < 600
