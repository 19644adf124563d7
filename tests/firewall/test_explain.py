"""Explanations in security-group terms, over the hand-built Neutron layout of test_tracer."""

from __future__ import annotations

from sgweb.firewall.model import (
    AddressPair,
    HostState,
    Port,
    SecurityGroup,
    SecurityGroupRule,
)
from sgweb.firewall.trace.explain import (
    ASPECT_PORT,
    ASPECT_PROTOCOL,
    ASPECT_REMOTE,
    REASON_DEFAULT_DROP,
    REASON_DHCP,
    REASON_DHCP_SERVER,
    REASON_ESTABLISHED,
    REASON_HOST_INPUT,
    REASON_INVALID,
    REASON_NO_PORT,
    REASON_PORT_SECURITY_OFF,
    REASON_RULE,
    REASON_SPOOF_IP,
    REASON_SPOOF_MAC,
    describe_rule,
    explain,
    nearest_rule,
)
from sgweb.firewall.trace.tracer import Packet, trace
from tests.firewall.test_tracer import DB, HOST, OPEN, WEB, from_port, to_port


def _rule(
    rule_id: str,
    direction: str = "ingress",
    protocol: str | None = None,
    low: int | None = None,
    high: int | None = None,
    prefix: str | None = None,
    group: str | None = None,
) -> SecurityGroupRule:
    return SecurityGroupRule(rule_id, direction, "IPv4", protocol, low, high, prefix, group)


WEB_GROUP = SecurityGroup(
    "g-web",
    "web",
    rules=(
        _rule("r-ssh", protocol="tcp", low=22, high=22, prefix="198.51.100.0/24"),
        _rule("r-icmp", protocol="icmp"),
        _rule("r-range", protocol="tcp", low=8000, high=8080),
        _rule("r-frag", protocol="icmp", low=3, high=4),
        _rule("r-out", direction="egress", protocol="6", prefix="203.0.113.0/24"),
    ),
)
DB_GROUP = SecurityGroup(
    "g-db",
    "db",
    rules=(
        _rule("r-pg", protocol="tcp", low=5432, high=5432, group="g-web"),
        _rule("r-pg-admin", protocol="tcp", low=5432, high=5432, prefix="203.0.113.0/24"),
    ),
)
STATE = HostState(
    ports=(
        Port(
            WEB.id,
            WEB.mac,
            (WEB.ip,),
            ("g-web",),
            (AddressPair("192.0.2.200", "fa:16:3e:00:00:99"),),
            name="web-1",
        ),
        Port(DB.id, DB.mac, (DB.ip,), ("g-db", "g-web"), name="db-1"),
        Port(OPEN.id, OPEN.mac, (OPEN.ip,), port_security_enabled=False, name="open-1"),
    ),
    security_groups=(WEB_GROUP, DB_GROUP),
    remote_group_members=(("g-web", ("192.0.2.10", "198.51.100.128/25")),),
)


def test_allowed_by_a_user_rule_names_rule_group_and_port_direction():
    result = explain(trace(HOST, to_port(WEB, src="198.51.100.7", protocol="tcp", dport=22)), STATE)
    assert result.reason == REASON_RULE and result.rule_id == "r-ssh"
    assert result.text == (
        "allowed at port web-1 ingress by rule r-ssh (tcp/22 from 198.51.100.0/24) of group web"
    )
    assert result.group_names == ("web",) and result.direction == "ingress"


def test_default_drop_names_the_groups_and_the_nearest_rule_and_what_differs():
    result = explain(
        trace(HOST, to_port(DB, src="198.51.100.7", protocol="tcp", dport=5432)), STATE
    )
    assert result.verdict == "DROP" and result.reason == REASON_DEFAULT_DROP
    assert result.nearest_rule_id == "r-pg" and result.differs == (ASPECT_REMOTE,)
    assert result.text == (
        "dropped at port db-1 ingress by the default drop: no rule of groups db, web allows "
        "tcp/5432 from 198.51.100.7; nearest rule r-pg of group db allows tcp/5432 from group web "
        "(differs in remote)"
    )
    assert result.to_dict()["differs"] == ["remote"]


def test_nearest_rule_prefers_fewest_differences_then_group_and_rule_order():
    port = STATE.ports[0]
    udp22 = Packet(src="198.51.100.7", dst=WEB.ip, protocol="udp", dport=22)
    rule, group_id, differs = nearest_rule(port, "ingress", udp22, STATE)
    assert (rule.id, group_id, differs) == ("r-ssh", "g-web", (ASPECT_PROTOCOL,))
    tcp9 = Packet(src="203.0.113.7", dst=WEB.ip, protocol="tcp", dport=9)
    rule, _, differs = nearest_rule(port, "ingress", tcp9, STATE)
    assert (rule.id, differs) == ("r-range", (ASPECT_PORT,))


def test_anti_spoofing_by_ip_lists_the_ports_addresses():
    result = explain(
        trace(HOST, from_port(WEB, src="203.0.113.9", dst="203.0.113.1", protocol="tcp", dport=80)),
        STATE,
    )
    assert result.reason == REASON_SPOOF_IP
    assert result.text == (
        "dropped at port web-1 egress by anti-spoofing: source 203.0.113.9 is not one of the "
        "port's addresses (192.0.2.10, 192.0.2.200)"
    )


def test_anti_spoofing_by_mac_says_which_mac_was_expected():
    result = explain(
        trace(
            HOST,
            from_port(
                WEB, src_mac="fa:16:3e:00:00:77", dst="203.0.113.1", protocol="tcp", dport=80
            ),
        ),
        STATE,
    )
    assert result.reason == REASON_SPOOF_MAC
    assert "source MAC fa:16:3e:00:00:77" in result.text and "fa:16:3e:00:00:10" in result.text


def test_dhcp_established_invalid_and_dhcp_server_have_their_own_words():
    dhcp = explain(
        trace(HOST, to_port(WEB, src="192.0.2.2", protocol="udp", sport=67, dport=68)), STATE
    )
    reply = explain(
        trace(
            HOST,
            to_port(
                WEB,
                src="203.0.113.9",
                protocol="tcp",
                sport=80,
                dport=41000,
                ct_state="ESTABLISHED",
            ),
        ),
        STATE,
    )
    invalid = explain(
        trace(HOST, to_port(WEB, src="203.0.113.9", protocol="tcp", dport=22, ct_state="INVALID")),
        STATE,
    )
    server = explain(
        trace(HOST, from_port(WEB, dst="192.0.2.99", protocol="udp", sport=67, dport=68)), STATE
    )
    assert (dhcp.reason, reply.reason, invalid.reason, server.reason) == (
        REASON_DHCP,
        REASON_ESTABLISHED,
        REASON_INVALID,
        REASON_DHCP_SERVER,
    )
    assert reply.text == "allowed at port web-1 ingress as part of an established connection"
    assert invalid.text == "dropped at port web-1 ingress as INVALID by conntrack"
    assert server.text == "dropped at port web-1 egress: the VM may not act as a DHCP server"


def test_port_security_off_and_no_port_are_said_plainly():
    off = explain(trace(HOST, to_port(OPEN, src="203.0.113.9", protocol="tcp", dport=25)), STATE)
    nobody = explain(
        trace(
            HOST,
            Packet(src="203.0.113.1", dst="198.51.100.1", physdev_in="eth1", physdev_out="eth2"),
        ),
        STATE,
    )
    assert off.reason == REASON_PORT_SECURITY_OFF
    assert off.text == "let through: port security is disabled on port open-1"
    assert nobody.reason == REASON_NO_PORT and nobody.text.startswith("not filtered: no port")


def test_traffic_to_the_host_itself_is_explained_as_unfiltered():
    result = explain(
        trace(
            HOST,
            Packet(
                src=WEB.ip,
                dst="192.0.2.1",
                src_mac=WEB.mac,
                protocol="tcp",
                dport=22,
                physdev_in=WEB.tap,
                hook="INPUT",
            ),
        ),
        STATE,
    )
    assert result.reason == REASON_HOST_INPUT and result.port_id == WEB.id


def test_describe_rule_reads_like_the_dashboard():
    assert describe_rule(WEB_GROUP.rules[2]) == "tcp/8000-8080 from any"
    assert describe_rule(WEB_GROUP.rules[3]) == "icmp type 3 code 4 from any"
    assert describe_rule(WEB_GROUP.rules[4]) == "tcp to 203.0.113.0/24"
    assert describe_rule(DB_GROUP.rules[0], STATE) == "tcp/5432 from group web"
    assert describe_rule(_rule("x")) == "any protocol from any"
