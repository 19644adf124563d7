"""Is a process subscribed to the nf_tables trace multicast group yet?

`xtables-monitor --trace` prints nothing once it has subscribed, so a tracer that only sleeps a
moment after starting it races the first packet: the packet is traced by the kernel but nobody is
listening yet ("the kernel saw no packet"). The kernel itself says when the subscription exists:
`/proc/<pid>/net/netlink` lists the netlink sockets of that process's network namespace, with
their protocol (`Eth`), port id (`Pid`), multicast groups (`Groups`, a hex bitmask of groups
1-32) and inode. A socket of the monitor (one of its fds, or its port id = its pid) with
protocol NETLINK_NETFILTER and the NFNLGRP_NFTRACE bit set means trace events now reach it.

The same row says whether the monitor keeps up: `Rmem` is what waits in its receive queue and
`Drops` counts the events the kernel threw away because that queue was full. xtables-monitor
keeps the default receive buffer (net.core.rmem_default, 208 KiB) and asks the kernel for each
traced rule's text (a netlink round trip per event): one TCP probe across two bridges is a
burst of a few hundred events, more than that buffer holds whenever the monitor is not scheduled
at once. The overrun makes its next recv fail with ENOBUFS, on which it exits ("cannot receive
from nfnetlink socket"): everything still queued is lost, and a trace read afterwards has no
packet at all or a traversal cut before its verdict. `grow_receive_buffer` gives the monitor's
socket a buffer that holds such a burst, `drained` says when it has read and printed all of it.

Nothing is started here (runner.py is the only module that runs commands): /proc is read, and
a duplicate of the monitor's socket is taken (pidfd_getfd) only to set its buffer size.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

NETLINK_NETFILTER = 12
NFNLGRP_NFTRACE = 9  # group n is bit n-1 of the Groups column
TRACE_GROUP_BIT = 1 << (NFNLGRP_NFTRACE - 1)  # 0x100
SO_RCVBUFFORCE = 33  # SO_RCVBUF beyond net.core.rmem_max (CAP_NET_ADMIN); not in `socket`
SYS_PIDFD_GETFD = 438  # same number on every architecture (Linux 5.6)
SYS_RECVMSG = {"x86_64": 47, "aarch64": 212}  # what a monitor waiting for events sleeps in
# Holds a few thousand trace events (~1-2 KiB each as the kernel accounts them): a probe's
# burst with room to spare, allocated only as events arrive.
TRACE_RCVBUF = 8 << 20


@dataclass(frozen=True, slots=True)
class NetlinkSocket:
    protocol: int
    port_id: int
    groups: int
    inode: int
    rmem: int = 0  # bytes waiting in its receive queue
    drops: int = 0  # messages the kernel dropped for want of room in that queue


def parse_proc_netlink(text: str) -> list[NetlinkSocket]:
    """The rows of a `/proc/<pid>/net/netlink` file (the header line is skipped)."""
    sockets = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            sockets.append(
                NetlinkSocket(
                    protocol=int(fields[1]),
                    # Port ids are printed as unsigned (%-10u); autobind may pick "negative" ones.
                    port_id=int(fields[2]),
                    groups=int(fields[3], 16),
                    inode=int(fields[9]),
                    rmem=int(fields[4]),
                    drops=int(fields[8]),
                )
            )
        except ValueError:
            continue
    return sockets


def _socket_fds(pid: int) -> dict[int, int]:
    """Socket inode -> fd number among the process's open fds (empty if it is gone)."""
    fds: dict[int, int] = {}
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return fds
    for name in names:
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if target.startswith("socket:[") and target.endswith("]"):
            fds[int(target[8:-1])] = int(name)
    return fds


def trace_socket(pid: int) -> tuple[NetlinkSocket, int | None] | None:
    """The row of process `pid`'s socket subscribed to NFNLGRP_NFTRACE and its fd number (None
    when only its port id ties it to the process), or None when it has none (yet, or any more)."""
    try:
        with open(f"/proc/{pid}/net/netlink", encoding="ascii") as table:
            sockets = parse_proc_netlink(table.read())
    except OSError:
        return None
    fds = _socket_fds(pid)
    for sock in sockets:
        if sock.protocol != NETLINK_NETFILTER or not sock.groups & TRACE_GROUP_BIT:
            continue
        if sock.inode in fds or sock.port_id == pid:
            return sock, fds.get(sock.inode)
    return None


def subscribed_to_trace(pid: int) -> bool:
    """Whether process `pid` holds a NETLINK_NETFILTER socket subscribed to NFNLGRP_NFTRACE."""
    return trace_socket(pid) is not None


def grow_receive_buffer(pid: int, size: int = TRACE_RCVBUF) -> int:
    """Give the trace socket of process `pid` a receive buffer of `size` bytes; returns the size
    the kernel reports afterwards. Raises OSError when it cannot (no such socket, no
    pidfd_getfd, no CAP_SYS_PTRACE / CAP_NET_ADMIN): the caller then traces with the default."""
    found = trace_socket(pid)
    if found is None or found[1] is None:
        raise OSError(errno.ENOENT, f"process {pid} has no trace socket among its fds")
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        duplicate = libc.syscall(SYS_PIDFD_GETFD, pidfd, found[1], 0)
        if duplicate < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"pidfd_getfd({pid}, {found[1]}): {os.strerror(code)}")
    finally:
        os.close(pidfd)
    # The duplicate is the monitor's own socket: setting its buffer sets the monitor's.
    with socket.socket(fileno=duplicate) as sock:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def waiting_for_events(pid: int, fd: int | None) -> bool | None:
    """Whether process `pid` sleeps in recvmsg on fd `fd` (its trace socket): it has printed
    everything it read. None when the kernel does not say (/proc/<pid>/syscall unreadable,
    unknown architecture): the caller then judges by its output alone."""
    number = SYS_RECVMSG.get(os.uname().machine)
    if number is None or fd is None:
        return None
    try:
        with open(f"/proc/{pid}/syscall", encoding="ascii") as current:
            fields = current.read().split()
    except OSError:
        return None
    if len(fields) < 2 or fields[0] == "running":
        return False
    try:
        return int(fields[0]) == number and int(fields[1], 16) == fd
    except ValueError:
        return False


class NotSubscribed(RuntimeError):
    """The monitor did not subscribe to trace events in time (or exited)."""


def wait_subscribed(
    pid: int,
    *,
    timeout: float = 2.0,
    every: float = 0.005,
    alive: Callable[[], bool] = lambda: True,
) -> float:
    """Block until `pid` is subscribed to trace events; returns the seconds waited.

    Raises NotSubscribed after `timeout`, or at once when `alive()` says the process exited (an
    exited monitor will never subscribe, and waiting the full timeout would only hide that)."""
    started = time.monotonic()
    while True:
        if subscribed_to_trace(pid):
            return time.monotonic() - started
        if not alive():
            raise NotSubscribed(f"the trace monitor (pid {pid}) exited before subscribing")
        if time.monotonic() - started >= timeout:
            raise NotSubscribed(
                f"the trace monitor (pid {pid}) did not subscribe to nf_tables trace events "
                f"within {timeout:g} s"
            )
        time.sleep(every)
