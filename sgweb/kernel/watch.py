"""What makes a drift check free when nothing changed: the nf_tables generation and two sysctls.

Every change to any nf_tables ruleset in a network namespace (iptables-nft, nft, our own
applies) commits a new generation; the kernel answers NFT_MSG_GETGEN with its id in a few
microseconds. So a drift check first reads the generation and the bridge sysctls; only when
either moved since the last clean check does it read the rules (`iptables-save`, the costly
part). Sysctl writes do not bump the generation, hence they are read too: a file descriptor per
sysctl, opened once inside the namespace (a descriptor of /proc/sys/net stays bound to the
namespace it was opened in), read with pread: no process, no namespace switch per check.

Hand-written netlink like `nftcounters` (the socket opened by the same `netns.in_netns`):
pyroute2's NFTSocket cannot be opened inside a named namespace (0.9.7), and GETGEN is one 20-byte
request.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
from dataclasses import dataclass

from sgweb.kernel.netns import in_netns
from sgweb.kernel.nftcounters import (
    NETLINK_NETFILTER,
    NFNL_SUBSYS_NFTABLES,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    attributes,
)

NFT_MSG_GETTABLE = 1
NFT_MSG_GETGEN = 16
NFTA_TABLE_NAME = 1
NLM_F_DUMP = 0x300
NLMSG_DONE = 3
# nfgen_family numbers -> nft's family names
NFT_FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}
NFT_MSG_NEWGEN = 15
NFTA_GEN_ID = 1

# bridged traffic passes iptables only while these are 1 (br_netfilter, per namespace)
BRIDGE_SYSCTLS = ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables")
# the namespace's connection-tracking entries, both families (there while nf_conntrack is loaded)
CONNTRACK_COUNT = "net.netfilter.nf_conntrack_count"


def sysctl_path(name: str) -> str:
    return "/proc/sys/" + name.replace(".", "/")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The cheap reading: equal snapshots mean nothing that decides traffic moved."""

    generation: int | None  # None: nf_tables could not be asked (then every check reads all)
    sysctls: tuple[tuple[str, int | None], ...]  # None: the sysctl does not exist


class KernelWatch:
    """The generation id and the bridge sysctls of one namespace, read without a process."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self._socket: socket.socket | None = None
        self._sysctl_fds: dict[str, int | None] = {}
        self._sequence = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None
            for fd in self._sysctl_fds.values():
                if fd is not None:
                    os.close(fd)
            self._sysctl_fds.clear()

    def snapshot(self) -> Snapshot:
        with self._lock:
            try:
                generation: int | None = self._generation()
            except OSError:
                self._drop_socket()
                generation = None
            return Snapshot(
                generation, tuple((name, self._sysctl(name)) for name in BRIDGE_SYSCTLS)
            )

    def generation(self) -> int | None:
        return self.snapshot().generation

    def sysctls(self) -> dict[str, int | None]:
        return dict(self.snapshot().sysctls)

    def sysctl(self, name: str) -> int | None:
        """One sysctl of the namespace (None: not there), e.g. `CONNTRACK_COUNT`; raises
        OSError when the namespace is gone."""
        with self._lock:
            return self._sysctl(name)

    # -- nf_tables generation -----------------------------------------------------------------

    def _drop_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _sock(self) -> socket.socket:
        if self._socket is None:
            sock = in_netns(
                self.netns,
                lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER),
            )
            sock.bind((0, 0))
            sock.settimeout(5)
            self._socket = sock
        return self._socket

    def _generation(self) -> int:
        sock = self._sock()
        self._sequence = (self._sequence + 1) & 0xFFFFFFFF
        body = struct.pack("=BBH", socket.AF_UNSPEC, 0, 0)
        kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN
        sock.send(struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST, self._sequence, 0)
                  + body)  # fmt: skip
        while True:
            data = sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, message_type, _flags, sequence, _pid = struct.unpack_from(
                    "=IHHII", data, offset
                )
                message = data[offset + 16 : offset + length]
                offset += (length + 3) & ~3
                if sequence != self._sequence:
                    continue
                if message_type == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", message, 0)[0]
                    raise OSError(code or errno.EPROTO, "nf_tables GETGEN")
                if message_type & 0xFF == NFT_MSG_NEWGEN:
                    for name, value in attributes(message[4:]):
                        if name == NFTA_GEN_ID:
                            generation: int = struct.unpack(">I", value[:4])[0]
                            return generation
                    raise OSError(errno.EPROTO, "nf_tables GETGEN without an id")

    def tables(self) -> list[tuple[str, str]]:
        """(family, name) of every nf_tables table: one netlink dump of table headers only
        (`nft list tables` would fetch the whole ruleset first: seconds on a big host)."""
        with self._lock:
            try:
                return self._tables()
            except OSError:
                self._drop_socket()
                raise

    def _tables(self) -> list[tuple[str, str]]:
        sock = self._sock()
        self._sequence = (self._sequence + 1) & 0xFFFFFFFF
        body = struct.pack("=BBH", socket.AF_UNSPEC, 0, 0)
        kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE
        sock.send(struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP,
                              self._sequence, 0) + body)  # fmt: skip
        found: list[tuple[str, str]] = []
        while True:
            data = sock.recv(1 << 16)
            offset = 0
            while offset + 16 <= len(data):
                length, message_type, _flags, sequence, _pid = struct.unpack_from(
                    "=IHHII", data, offset
                )
                message = data[offset + 16 : offset + length]
                offset += (length + 3) & ~3
                if sequence != self._sequence:
                    continue
                if message_type == NLMSG_DONE:
                    return found
                if message_type == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", message, 0)[0]
                    if code == 0:
                        return found
                    raise OSError(code, "nf_tables table dump")
                family = NFT_FAMILIES.get(message[0], str(message[0]))
                for name, value in attributes(message[4:]):
                    if name == NFTA_TABLE_NAME:
                        found.append((family, value.rstrip(b"\0").decode()))

    # -- sysctls ------------------------------------------------------------------------------

    def _sysctl(self, name: str) -> int | None:
        if name not in self._sysctl_fds:
            path = sysctl_path(name)

            def open_it() -> int | None:
                try:
                    return os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    return None  # br_netfilter not loaded: nothing to read (yet)

            self._sysctl_fds[name] = in_netns(self.netns, open_it)
        fd = self._sysctl_fds[name]
        if fd is None:
            del self._sysctl_fds[name]  # try again next time: the module may get loaded
            return None
        try:
            return int(os.pread(fd, 32, 0).strip() or b"0")
        except (OSError, ValueError):
            os.close(fd)
            del self._sysctl_fds[name]
            return None
