"""Kernel object names, exactly as Neutron's hybrid iptables driver forms them, and their limits."""

from __future__ import annotations

import re
from functools import lru_cache

# Linux interface names: IFNAMSIZ is 16 bytes including the terminating NUL.
IFNAMSIZ = 16
MAX_INTERFACE_NAME_LENGTH = IFNAMSIZ - 1
# xtables chain names: XT_EXTENSION_MAXNAMELEN is 29 including the NUL.
MAX_CHAIN_NAME_LENGTH = 28
# ipset names: IPSET_MAXNAMELEN is 32 including the NUL.
MAX_IPSET_NAME_LENGTH = 31

DEVICE_PREFIX = "tap"
DEVICE_ID_CHARS = 11
CHAIN_ID_CHARS = 10
IPSET_GROUP_ID_CHARS = 20
# ipset swap partner of a live set while its new members are loaded.
IPSET_TEMPORARY_SUFFIX = "-n"

FILTER_TOP_CHAIN = "neutron-filter-top"
INGRESS_LETTER = "i"
EGRESS_LETTER = "o"
SPOOF_LETTER = "s"

# NFLOG prefixes: NF_LOG_PREFIXLEN is 64 including the NUL.
MAX_LOG_PREFIX_LENGTH = 63
# The longest "<event> <direction> " head of a log prefix ("ACCEPT ingress ").
LOG_PREFIX_HEAD_LENGTH = len("ACCEPT ingress ")

# Characters allowed in ids that end up in chain, set and device names and in rule comments.
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
# What the kernel accepts in an interface name (no '/', ':' or whitespace), kept conservative.
SAFE_INTERFACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def device_name(port_id: str) -> str:
    return DEVICE_PREFIX + port_id[:DEVICE_ID_CHARS]


def log_prefix(event: str, direction: str, port_id: str) -> str:
    """The --nflog-prefix of a port's log rule: the agent reads event, direction and port from
    each logged packet's prefix (e.g. "DROP ingress 6c1a...")."""
    return f"{event} {direction} {port_id}"


def veth_name(port_id: str) -> str:
    """The port's qbr-side veth (hybrid plugging: tap -- qbr -- qvb/qvo -- fabric)."""
    return "qvb" + port_id[:DEVICE_ID_CHARS]


def bridge_name(port_id: str) -> str:
    """The port's own Linux bridge (hybrid plugging)."""
    return "qbr" + port_id[:DEVICE_ID_CHARS]


def port_chain_name(prefix: str, letter: str, port_id: str) -> str:
    return f"{prefix}-{letter}{port_id[:CHAIN_ID_CHARS]}"


def ingress_chain(prefix: str, port_id: str) -> str:
    return port_chain_name(prefix, INGRESS_LETTER, port_id)


def egress_chain(prefix: str, port_id: str) -> str:
    return port_chain_name(prefix, EGRESS_LETTER, port_id)


def spoof_chain(prefix: str, port_id: str) -> str:
    return port_chain_name(prefix, SPOOF_LETTER, port_id)


def wrapped_chain(prefix: str, name: str) -> str:
    """Host-wide chains: FORWARD, INPUT, OUTPUT, local, sg-chain, sg-fallback, PREROUTING."""
    return f"{prefix}-{name}"


def forward_chain(prefix: str) -> str:
    return wrapped_chain(prefix, "FORWARD")


def input_chain(prefix: str) -> str:
    return wrapped_chain(prefix, "INPUT")


def output_chain(prefix: str) -> str:
    return wrapped_chain(prefix, "OUTPUT")


def local_chain(prefix: str) -> str:
    return wrapped_chain(prefix, "local")


def sg_chain(prefix: str) -> str:
    return wrapped_chain(prefix, "sg-chain")


def fallback_chain(prefix: str) -> str:
    return wrapped_chain(prefix, "sg-fallback")


def prerouting_chain(prefix: str) -> str:
    return wrapped_chain(prefix, "PREROUTING")


def ipset_name(ethertype: str, group_id: str) -> str:
    """ "IPv4"/"IPv6" + the first 20 characters of the group id (article 3.3.4)."""
    return ethertype + group_id[:IPSET_GROUP_ID_CHARS]


def temporary_ipset_name(name: str) -> str:
    return name + IPSET_TEMPORARY_SUFFIX


@lru_cache(maxsize=1 << 16)
def interface_name_problem(name: str) -> str | None:
    """Why the kernel would refuse this interface name, or None."""
    if not name:
        return "an empty interface name"
    if len(name) > MAX_INTERFACE_NAME_LENGTH:
        return (
            f"interface name {name!r} must be shorter than IFNAMSIZ ({IFNAMSIZ - 1}): "
            f"it has {len(name)} characters"
        )
    if not SAFE_INTERFACE.match(name):
        return f"interface name {name!r} has characters outside [A-Za-z0-9_.-]"
    return None


def chain_name_problem(name: str) -> str | None:
    if len(name) > MAX_CHAIN_NAME_LENGTH:
        return (
            f"chain name {name!r} is {len(name)} characters; iptables allows at most "
            f"{MAX_CHAIN_NAME_LENGTH}"
        )
    return None
