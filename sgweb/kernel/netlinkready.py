"""Is a process subscribed to the nf_tables trace multicast group yet?

`xtables-monitor --trace` prints nothing once it has subscribed, so a tracer that only sleeps a
moment after starting it races the first packet: the packet is traced by the kernel but nobody is
listening yet ("the kernel saw no packet"). The kernel itself says when the subscription exists:
`/proc/<pid>/net/netlink` lists the netlink sockets of that process's network namespace, with
their protocol (`Eth`), port id (`Pid`), multicast groups (`Groups`, a hex bitmask of groups
1-32) and inode. A socket of the monitor (one of its fds, or its port id = its pid) with
protocol NETLINK_NETFILTER and the NFNLGRP_NFTRACE bit set means trace events now reach it.

Reading /proc only; nothing is started here (runner.py is the only module that runs commands).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

NETLINK_NETFILTER = 12
NFNLGRP_NFTRACE = 9  # group n is bit n-1 of the Groups column
TRACE_GROUP_BIT = 1 << (NFNLGRP_NFTRACE - 1)  # 0x100


@dataclass(frozen=True, slots=True)
class NetlinkSocket:
    protocol: int
    port_id: int
    groups: int
    inode: int


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
                )
            )
        except ValueError:
            continue
    return sockets


def _socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets among the process's open fds (empty if it is gone)."""
    inodes: set[int] = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if target.startswith("socket:[") and target.endswith("]"):
            inodes.add(int(target[8:-1]))
    return inodes


def subscribed_to_trace(pid: int) -> bool:
    """Whether process `pid` holds a NETLINK_NETFILTER socket subscribed to NFNLGRP_NFTRACE."""
    try:
        with open(f"/proc/{pid}/net/netlink", encoding="ascii") as table:
            sockets = parse_proc_netlink(table.read())
    except OSError:
        return False
    inodes = _socket_inodes(pid)
    return any(
        sock.protocol == NETLINK_NETFILTER
        and sock.groups & TRACE_GROUP_BIT
        and (sock.inode in inodes or sock.port_id == pid)
        for sock in sockets
    )


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
