# ruff: noqa: E501  (the article's lines are quoted verbatim)
"""The article's worked example (3.3.2-3.3.4) as model objects and its printed iptables lines.

The article lets every DHCP request pass before the anti-spoofing check; its hosts use the
`article` compat layout, the only one that reproduces it line for line."""

from __future__ import annotations

import re

from sgweb.firewall.model import (
    COMPAT_ARTICLE,
    HostState,
    Port,
    SecurityGroup,
    SecurityGroupRule,
)

PORT_ID = "6e3f2eda-3230-45e8-9be5-f382af5b83ea"
GROUP_ID = "0aff643b-7b34-4384-b482-f37eccef5b90"
REMOTE_GROUP_ID = "f5377a66-803d-481b-b4c3-a6631e8ab456"
REMOTE_MEMBERS = ("91.1.180.5", "81.1.180.13")

ARTICLE_PORT = Port(
    id=PORT_ID,
    mac_address="FA:16:3E:F3:1E:C0",
    fixed_ips=("91.1.180.14",),
    dhcp_servers=("90.1.180.3", "91.1.180.2"),
)

# The seven rules in the order the article prints them (3.3.3).
SEVEN_RULES = (
    SecurityGroupRule("rule-6", "ingress", "IPv4", "tcp", 110, 110, "15.5.0.0/16"),
    SecurityGroupRule("rule-4", "ingress", "IPv4", "tcp", 80, 80),
    SecurityGroupRule("rule-7", "ingress", "IPv4", "udp", 53, 53, "100.1.100.0/24"),
    SecurityGroupRule("rule-2", "ingress", "IPv4", "icmp"),
    SecurityGroupRule("rule-3", "egress", "IPv4", "tcp", 22, 22),
    SecurityGroupRule("rule-1", "egress", "IPv4", "icmp"),
    SecurityGroupRule("rule-5", "egress", "IPv4", "tcp", 80, 80),
)

SSH_FROM_REMOTE_GROUP = SecurityGroupRule(
    "3340b429-22dc-4176-b5c0-01a4f449e812",
    "ingress",
    "IPv4",
    "tcp",
    22,
    22,
    remote_group_id=REMOTE_GROUP_ID,
)


def host_without_groups() -> HostState:
    return HostState(ports=(ARTICLE_PORT,), compat=COMPAT_ARTICLE)


def host_with_seven_rules() -> HostState:
    port = Port(**{**_fields(ARTICLE_PORT), "security_groups": (GROUP_ID,)})
    return HostState(
        ports=(port,),
        security_groups=(SecurityGroup(GROUP_ID, rules=SEVEN_RULES),),
        compat=COMPAT_ARTICLE,
    )


def host_with_remote_group(enable_ipset: bool) -> HostState:
    port = Port(**{**_fields(ARTICLE_PORT), "security_groups": (GROUP_ID,)})
    group = SecurityGroup(GROUP_ID, rules=(SSH_FROM_REMOTE_GROUP,))
    return HostState(
        ports=(port,),
        security_groups=(group, SecurityGroup(REMOTE_GROUP_ID, name="default")),
        remote_group_members=((REMOTE_GROUP_ID, REMOTE_MEMBERS),),
        enable_ipset=enable_ipset,
        compat=COMPAT_ARTICLE,
    )


def _fields(port: Port) -> dict[str, object]:
    return {name: getattr(port, name) for name in port.__slots__}


_COMMENT = re.compile(r' -m comment --comment (?:"[^"]*"|\S+)')


def without_comments(line: str) -> str:
    return _COMMENT.sub("", line)


def article_lines(text: str) -> list[str]:
    """The -A lines of a block copied from the article, its trailing '#' notes removed."""
    lines = []
    for raw in text.strip().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


# Article 3.3.2, verbatim (its Chinese notes after '#' are stripped by article_lines).
SECTION_3_3_2 = """
-A neutron-openvswi-FORWARD -m physdev --physdev-out tap6e3f2eda-32 --physdev-is-bridged -j neutron-openvswi-sg-chain
-A neutron-openvswi-FORWARD -m physdev --physdev-in tap6e3f2eda-32 --physdev-is-bridged -j neutron-openvswi-sg-chain
-A neutron-openvswi-INPUT -m physdev --physdev-in tap6e3f2eda-32 --physdev-is-bridged -j neutron-openvswi-o6e3f2eda-3
-A neutron-openvswi-i6e3f2eda-3 -m state --state INVALID -j DROP
-A neutron-openvswi-i6e3f2eda-3 -m state --state RELATED,ESTABLISHED -j RETURN
-A neutron-openvswi-i6e3f2eda-3 -s 90.1.180.3/32 -p udp -m udp --sport 67 --dport 68 -j RETURN
-A neutron-openvswi-i6e3f2eda-3 -s 91.1.180.2/32 -p udp -m udp --sport 67 --dport 68 -j RETURN
-A neutron-openvswi-i6e3f2eda-3 -j neutron-openvswi-sg-fallback
-A neutron-openvswi-o6e3f2eda-3 -p udp -m udp --sport 68 --dport 67 -j RETURN
-A neutron-openvswi-o6e3f2eda-3 -j neutron-openvswi-s6e3f2eda-3
-A neutron-openvswi-o6e3f2eda-3 -p udp -m udp --sport 67 --dport 68 -j DROP
-A neutron-openvswi-o6e3f2eda-3 -m state --state INVALID -j DROP
-A neutron-openvswi-o6e3f2eda-3 -m state --state RELATED,ESTABLISHED -j RETURN
-A neutron-openvswi-o6e3f2eda-3 -j neutron-openvswi-sg-fallback
-A neutron-openvswi-s6e3f2eda-3 -s 91.1.180.14/32 -m mac --mac-source FA:16:3E:F3:1E:C0 -j RETURN
-A neutron-openvswi-s6e3f2eda-3 -j DROP
-A neutron-openvswi-sg-chain -m physdev --physdev-out tap6e3f2eda-32 --physdev-is-bridged -j neutron-openvswi-i6e3f2eda-3
-A neutron-openvswi-sg-chain -m physdev --physdev-in tap6e3f2eda-32 --physdev-is-bridged -j neutron-openvswi-o6e3f2eda-3
-A neutron-openvswi-sg-chain -j ACCEPT
-A neutron-openvswi-sg-fallback -j DROP
"""

# Article 3.3.3, verbatim.
SECTION_3_3_3 = """
-A neutron-openvswi-FORWARD -m physdev --physdev-out tap6e3f2eda-32 --physdev-is-bridged -j neutron-openvswi-sg-chain
-A neutron-openvswi-FORWARD -m physdev --physdev-in tap6e3f2eda-32 --physdev-is-bridged -j neutron-openvswi-sg-chain
-A neutron-openvswi-INPUT -m physdev --physdev-in tap6e3f2eda-32 --physdev-is-bridged -j neutron-openvswi-o6e3f2eda-3
-A neutron-openvswi-i6e3f2eda-3 -m state --state INVALID -j DROP
-A neutron-openvswi-i6e3f2eda-3 -m state --state RELATED,ESTABLISHED -j RETURN
-A neutron-openvswi-i6e3f2eda-3 -s 90.1.180.3/32 -p udp -m udp --sport 67 --dport 68 -j RETURN
-A neutron-openvswi-i6e3f2eda-3 -s 91.1.180.2/32 -p udp -m udp --sport 67 --dport 68 -j RETURN
-A neutron-openvswi-i6e3f2eda-3 -s 15.5.0.0/16 -p tcp -m tcp --dport 110 -j RETURN
-A neutron-openvswi-i6e3f2eda-3 -p tcp -m tcp --dport 80 -j RETURN
-A neutron-openvswi-i6e3f2eda-3 -s 100.1.100.0/24 -p udp -m udp --dport 53 -j RETURN
-A neutron-openvswi-i6e3f2eda-3 -p icmp -j RETURN
-A neutron-openvswi-i6e3f2eda-3 -j neutron-openvswi-sg-fallback
-A neutron-openvswi-o6e3f2eda-3 -p udp -m udp --sport 68 --dport 67 -j RETURN
-A neutron-openvswi-o6e3f2eda-3 -j neutron-openvswi-s6e3f2eda-3
-A neutron-openvswi-o6e3f2eda-3 -p udp -m udp --sport 67 --dport 68 -j DROP
-A neutron-openvswi-o6e3f2eda-3 -m state --state INVALID -j DROP
-A neutron-openvswi-o6e3f2eda-3 -m state --state RELATED,ESTABLISHED -j RETURN
-A neutron-openvswi-o6e3f2eda-3 -p tcp -m tcp --dport 22 -j RETURN
-A neutron-openvswi-o6e3f2eda-3 -p icmp -j RETURN
-A neutron-openvswi-o6e3f2eda-3 -p tcp -m tcp --dport 80 -j RETURN
-A neutron-openvswi-o6e3f2eda-3 -j neutron-openvswi-sg-fallback
-A neutron-openvswi-s6e3f2eda-3 -s 91.1.180.14/32 -m mac --mac-source FA:16:3E:F3:1E:C0 -j RETURN
-A neutron-openvswi-s6e3f2eda-3 -j DROP
-A neutron-openvswi-sg-chain -m physdev --physdev-out tap6e3f2eda-32 --physdev-is-bridged -j neutron-openvswi-i6e3f2eda-3
-A neutron-openvswi-sg-chain -m physdev --physdev-in tap6e3f2eda-32 --physdev-is-bridged -j neutron-openvswi-o6e3f2eda-3
-A neutron-openvswi-sg-chain -j ACCEPT
-A neutron-openvswi-sg-fallback -j DROP
"""

# Article 3.3.1: the chains and the jumps between the built-in chains and ours.
SECTION_3_3_1 = """
-N neutron-filter-top
-N neutron-openvswi-FORWARD
-N neutron-openvswi-INPUT
-N neutron-openvswi-OUTPUT
-N neutron-openvswi-i6e3f2eda-3
-N neutron-openvswi-local
-N neutron-openvswi-o6e3f2eda-3
-N neutron-openvswi-s6e3f2eda-3
-N neutron-openvswi-sg-chain
-N neutron-openvswi-sg-fallback
-A INPUT -j neutron-openvswi-INPUT
-A FORWARD -j neutron-filter-top
-A FORWARD -j neutron-openvswi-FORWARD
-A OUTPUT -j neutron-filter-top
-A OUTPUT -j neutron-openvswi-OUTPUT
-A neutron-filter-top -j neutron-openvswi-local
"""

# Article 3.3.4: the set, and the rule with and without ipset.
SECTION_3_3_4_SET_NAME = "IPv4f5377a66-803d-481b-b"
SECTION_3_3_4_WITH_IPSET = (
    "-A neutron-openvswi-i6e3f2eda-3 -p tcp -m tcp --dport 22 -m set --match-set "
    "IPv4f5377a66-803d-481b-b src -j RETURN"
)
SECTION_3_3_4_WITHOUT_IPSET = (
    "-A neutron-openvswi-i6e3f2eda-3 -s 91.1.180.5/32 -p tcp -m tcp --dport 22 -j RETURN",
    "-A neutron-openvswi-i6e3f2eda-3 -s 81.1.180.13/32 -p tcp -m tcp --dport 22 -j RETURN",
)
