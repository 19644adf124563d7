"""Raw layer-2 sockets on the endpoints of a topology, opened from the test process itself.

A socket keeps the network namespace it was created in, so a short-lived thread enters each
endpoint's namespace, opens an AF_PACKET socket on its eth0 and leaves; the test then sends and
receives whole frames on every endpoint without starting a process per probe. The endpoints'
own stacks are silenced (their INPUT and OUTPUT policies drop, in their namespaces only) so the
only packets on the wire are the probes and the answers the test writes itself: a packet socket
sees a frame before the stack's INPUT hook and sends around its OUTPUT hook.
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import threading
import time
from collections.abc import Iterable

from sgweb.kernel.runner import CommandRunner

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def _open_in(netns: str, interface: str) -> socket.socket:
    result: dict[str, object] = {}

    def enter_and_open() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {netns}")
            finally:
                os.close(fd)
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.bind((interface, 0))
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            result["socket"] = sock
        except BaseException as error:  # handed to the caller's thread
            result["error"] = error

    # The thread ends inside the namespace; only it ever entered, the test process stays put.
    thread = threading.Thread(target=enter_and_open, name=f"open-{netns}")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["socket"]  # type: ignore[return-value]


def silence(runner: CommandRunner, netns: str) -> None:
    """The endpoint's own stack neither answers nor speaks (its namespace only)."""
    script = "".join(
        f"{tool} -w -P INPUT DROP\n{tool} -w -P OUTPUT DROP\n" for tool in ("iptables", "ip6tables")
    )
    runner.run(["sh", "-ec", script], netns=netns)


class Wires:
    """label -> a packet socket on that endpoint's eth0."""

    def __init__(self, namespaces: dict[str, str], interface: str = "eth0") -> None:
        self.sockets = {label: _open_in(netns, interface) for label, netns in namespaces.items()}
        self._labels = {sock.fileno(): label for label, sock in self.sockets.items()}

    def send(self, label: str, frame: bytes) -> None:
        self.sockets[label].send(frame)

    def drain(self) -> None:
        self.collect(0.0)

    def collect(self, quiet_for: float, timeout: float = 5.0) -> dict[str, list[bytes]]:
        """Frames received (not sent) by each endpoint until none came for `quiet_for` s."""
        received: dict[str, list[bytes]] = {label: [] for label in self.sockets}
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while True:
            wait = max(0.0, min(quiet_for - (time.monotonic() - last), deadline - time.monotonic()))
            ready, _, _ = select.select(list(self.sockets.values()), [], [], wait)
            if not ready:
                if time.monotonic() - last >= quiet_for or time.monotonic() >= deadline:
                    return received
                continue
            last = time.monotonic()
            for sock in ready:
                for frame in _read_all(sock):
                    received[self._labels[sock.fileno()]].append(frame)

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()


def _read_all(sock: socket.socket) -> Iterable[bytes]:
    while True:
        try:
            frame, address = sock.recvfrom(65535)
        except BlockingIOError:
            return
        if address[2] != PACKET_OUTGOING:
            yield frame
