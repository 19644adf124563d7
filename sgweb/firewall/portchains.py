"""The chains of one filtered port (i, o, s) for one family, in the article's order.

The fixed rules come from `compiled_rules`; the user rules come from per-group templates whose
Match objects are shared by every port using the group, so a port costs one Rule and one Origin
per emitted rule and nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence

from sgweb.firewall import names
from sgweb.firewall.compiled_rules import (
    _ORIGIN_SLOTS,
    _RULE_SLOTS,
    DHCP_SERVER_PORTS,
    NO_MATCH,
    PortContext,
    base_egress_rules,
    base_ingress_head,
    link_local_address,
    new_chain,
    new_match,
    new_rule,
)
from sgweb.firewall.ir import (
    DROP,
    ORIGIN_ANTI_SPOOF,
    ORIGIN_DHCP,
    ORIGIN_FALLBACK,
    ORIGIN_SG_RULE,
    RETURN,
    Chain,
    Match,
    Origin,
    PortRange,
    Rule,
    lazy_chain,
)
from sgweb.firewall.model import COMPAT_NEUTRON, EGRESS, INGRESS, Port, SecurityGroupRule
from sgweb.firewall.packetlog import PortLog, drop_log_rule, with_accept_logs
from sgweb.firewall.protocols import MULTIPORT_ONLY_PROTOCOLS, takes_icmp_type, takes_ports
from sgweb.firewall.render import chain_text, match_text
from sgweb.firewall.validate import address_version

(_set_chain, _set_match, _set_target, _set_origin, _set_args, _set_comment) = _RULE_SLOTS
(_set_kind, _set_port, _set_direction, _set_group, _set_rule, _set_member) = _ORIGIN_SLOTS
_new = object.__new__

IPSET_DIRECTION = {INGRESS: "src", EGRESS: "dst"}
# Ports of a subnet share its DHCP servers: one Match per server address.
_DHCP_REPLY_MATCHES: dict[str, Match] = {}

# A group rule as it sits in a port chain: the shared Match and what the origin needs.
# (match, group_id, rule_id, member, comment)
Template = tuple[Match, str, str, "str | None", str]


def sg_rule_comment(rule_id: str) -> str:
    """The comment of a security group rule's kernel rules: fixed phrase and id only, so a
    kernel trace (xtables-monitor prints comments) maps back to the rule."""
    return "sg-rule " + rule_id


class PortChainBuilder:
    """The i/o/s chains of one filtered port for one family (article 3.3.2/3.3.3 order, with
    current Neutron's DHCP order unless the compat layout is the article's).

    After `lazy_build` it is also the ChainSource of those chains: text from the prototype,
    rules on demand (one object per port and family rather than two)."""

    __slots__ = (
        "compat",
        "egress",
        "family",
        "ingress",
        "log",
        "log_port_id",
        "origin",
        "port",
        "prefix",
        "prototype",
        "rules",
        "spoof",
        "stateful",
    )

    def __init__(
        self,
        prefix: str,
        port: Port,
        family: int,
        stateful: bool,
        context: PortContext,
        compat: str = COMPAT_NEUTRON,
        log: PortLog | None = None,
    ) -> None:
        self.prefix = prefix
        self.compat = compat
        # Packet logging: the port id in the log prefixes; a prototype renders a stand-in,
        # which `chain_text` fills in, so logged ports share prototypes too.
        self.log = log
        self.log_port_id = port.id
        self.port = port
        self.origin = context
        self.family = family
        self.stateful = stateful
        self.ingress = context.ingress
        self.egress = context.egress
        self.spoof = context.spoof
        self.prototype: PortChainPrototype | None = None
        self.rules: tuple[tuple[Rule, ...], tuple[Rule, ...]] | None = None

    def build(
        self,
        ingress: tuple[Template, ...],
        egress: tuple[Template, ...],
    ) -> tuple[Chain, ...]:
        """The (i, o, s) chains, every rule made now."""
        in_rules, out_rules = self.io_rules(ingress, egress)
        return (
            new_chain(self.ingress, in_rules),
            new_chain(self.egress, out_rules),
            new_chain(self.spoof, self._spoof_rules()),
        )

    def lazy_build(self, prototype: PortChainPrototype) -> tuple[Chain, ...]:
        """The (i, o, s) chains; the i and o rules are made only when someone reads them."""
        self.prototype = prototype
        return (
            lazy_chain(self.ingress, self, 0),
            lazy_chain(self.egress, self, 1),
            lazy_chain(self.spoof, self, 2),
        )

    def chain_rules(self, index: int) -> tuple[Rule, ...]:
        if index == 2:
            return self._spoof_rules()
        if self.rules is None:
            prototype = self.prototype
            assert prototype is not None, "chain_rules before lazy_build"
            self.rules = self.io_rules(prototype.ingress, prototype.egress)
        return self.rules[index]

    def chain_text(self, index: int) -> str:
        if index == 2:
            return self.spoof_text()
        prototype = self.prototype
        assert prototype is not None, "chain_text before lazy_build"
        # The prototype's text comes split at the chain name's stand-ins: joining the parts
        # with the name is an order of magnitude faster than str.replace over the whole text.
        if index == 0:
            text = self.ingress.join(prototype.ingress_parts)
        else:
            parts = prototype.egress_parts
            if prototype.spoof_at:
                parts = list(parts)
                for at in prototype.spoof_at:
                    parts[at] = parts[at].replace(_SPOOF_NAME, self.spoof)
            text = self.egress.join(parts)
        if self.log is not None:
            text = text.replace(_LOG_PORT_ID, self.port.id)
        return text

    def io_rules(
        self, ingress: tuple[Template, ...], egress: tuple[Template, ...]
    ) -> tuple[tuple[Rule, ...], tuple[Rule, ...]]:
        """The rules of the i and o chains.

        They depend on the port only through its chain names, its DHCP servers, the host's
        compat layout and (for templates that stand for one remote member each) its own
        addresses: the key of
        `PortChainPrototype` lists exactly these, so a new per-port input here must be added
        there too (test_lazy_chains.py compares the two for generated hosts).
        """
        in_rules = base_ingress_head(self.ingress, self.origin, self.family, self.stateful)
        in_rules.extend(self._dhcp_replies())
        in_rules = self._user_and_fallback(in_rules, self.ingress, INGRESS, ingress)
        out_rules = base_egress_rules(
            self.egress, self.spoof, self.origin, self.family, self.stateful, self.compat
        )
        out_rules = self._user_and_fallback(out_rules, self.egress, EGRESS, egress)
        return tuple(in_rules), tuple(out_rules)

    def _user_and_fallback(
        self, rules: list[Rule], chain: str, direction: str, templates: tuple[Template, ...]
    ) -> list[Rule]:
        """`rules` + the user rules + the jump to the default drop, with the port's packet-log
        rules where logging asks for them."""
        start = len(rules)
        self._user_rules(rules, chain, direction, templates)
        log = self.log
        if log is not None and log.accepts:
            rules = with_accept_logs(rules, start, self.log_port_id, direction, log)
        if log is not None and log.drops:
            rules.append(drop_log_rule(chain, self.log_port_id, direction, log))
        fallback = self.origin(ORIGIN_FALLBACK, direction)
        # The fallback chain's name is made here: most builders never make their rules.
        rules.append(new_rule(chain, NO_MATCH, names.fallback_chain(self.prefix), fallback))
        return rules

    def _dhcp_replies(self) -> list[Rule]:
        server_port, client_port = DHCP_SERVER_PORTS[self.family]
        host = "/32" if self.family == 4 else "/128"
        origin = self.origin(ORIGIN_DHCP, INGRESS)
        rules = []
        for server in self.port.dhcp_servers:
            if address_version(server) != self.family:
                continue
            match = _DHCP_REPLY_MATCHES.get(server)
            if match is None:
                match = Match(
                    source=server + host,
                    protocol="udp",
                    source_port=PortRange(server_port, server_port),
                    destination_port=PortRange(client_port, client_port),
                )
                if len(_DHCP_REPLY_MATCHES) > 10_000:
                    _DHCP_REPLY_MATCHES.clear()
                _DHCP_REPLY_MATCHES[server] = match
            rules.append(new_rule(self.ingress, match, RETURN, origin))
        return rules

    def _user_rules(
        self,
        out: list[Rule],
        chain: str,
        direction: str,
        templates: tuple[Template, ...],
    ) -> None:
        # The hot loop: one iteration per emitted user rule (most of a host's rules), so the
        # Rule and Origin are filled through their slots inline.
        port_id = self.port.id
        host = "/32" if self.family == 4 else "/128"
        own_hosts = frozenset(ip + host for ip in self.port.fixed_ips)
        append = out.append
        for match, group_id, rule_id, member, comment in templates:
            if member is not None and member in own_hosts:
                continue  # Neutron leaves the port's own address out of the expansion
            origin = _new(Origin)
            _set_kind(origin, ORIGIN_SG_RULE)
            _set_port(origin, port_id)
            _set_direction(origin, direction)
            _set_group(origin, group_id)
            _set_rule(origin, rule_id)
            _set_member(origin, member)
            rule = _new(Rule)
            _set_chain(rule, chain)
            _set_match(rule, match)
            _set_target(rule, RETURN)
            _set_origin(rule, origin)
            _set_args(rule, ())
            _set_comment(rule, comment)
            append(rule)

    def spoof_pairs(self) -> list[tuple[str | None, str]]:
        """The (source CIDR or None, upper-case MAC) pairs the s chain lets through, in order."""
        # Once per port and family in every full compile: the address family is told by
        # ":" inline (validated addresses), not by a call per address.
        port = self.port
        v6 = self.family == 6
        host = "/128" if v6 else "/32"
        own_mac = port.mac_address
        pairs: list[tuple[str | None, str]] = [
            (ip + host, own_mac) for ip in port.fixed_ips if (":" in ip) is v6
        ]
        if v6:
            pairs.append((link_local_address(own_mac) + host, own_mac))
        for pair in port.allowed_address_pairs:
            ip = pair.ip_address
            if (":" in ip) is not v6:
                continue
            mac = pair.mac_address or own_mac
            pairs.append((ip if "/" in ip else ip + host, mac))
            if v6:
                pairs.append((link_local_address(mac) + host, mac))
        if not port.fixed_ips:
            # Neutron: a port without addresses may still speak from its MAC (e.g. DHCP).
            pairs.append((None, own_mac))
        # Duplicates dropped as given (validated MACs are lower-case), then upper-cased as the
        # article prints them.
        return [(source, mac.upper()) for source, mac in dict.fromkeys(pairs)]

    def _spoof_rules(self) -> tuple[Rule, ...]:
        origin = self.origin(ORIGIN_ANTI_SPOOF, EGRESS)
        rules = [
            new_rule(self.spoof, new_match(source=source, mac_source=mac), RETURN, origin)
            for source, mac in self.spoof_pairs()
        ]
        rules.append(new_rule(self.spoof, NO_MATCH, DROP, origin))
        return tuple(rules)

    def spoof_text(self) -> str:
        """`chain_text(self._spoof_rules())` without making the rules: the two shapes of an
        anti-spoofing rule are rendered once with stand-ins, then filled in."""
        (source_head, source_mac, mac_tail), (mac_head, mac_only_tail), drop = _spoof_tails()
        head = "-A " + self.spoof
        lines = [
            head + mac_head + mac + mac_only_tail
            if source is None
            else head + source_head + source + source_mac + mac + mac_tail
            for source, mac in self.spoof_pairs()
        ]
        lines.append(head + drop)
        return "\n".join(lines)


# Stand-ins for a port's chain names in a prototype's text, and for the address and MAC of an
# anti-spoofing rule; no rendered rule contains a NUL.
_INGRESS_NAME = "\x00i\x00"
_EGRESS_NAME = "\x00o\x00"
_SPOOF_NAME = "\x00s\x00"
_LOG_PORT_ID = "\x00p\x00"
_SOURCE = "\x00a\x00"
_MAC = "\x00m\x00"
# The tail of an s-chain rule with a source, split around the stand-ins (before the source,
# between source and MAC, after the MAC); of one without a source (before and after the MAC);
# of its DROP.
_SpoofTails = tuple[tuple[str, str, str], tuple[str, str], str]
_SPOOF_TAILS: list[_SpoofTails] = []


def _spoof_tails() -> _SpoofTails:
    """The rendered tails of an s-chain rule with and without a source, split around the
    stand-ins (a port's line is then a few concatenations), and the tail of its DROP."""
    if not _SPOOF_TAILS:
        with_source = match_text(Match(source=_SOURCE, mac_source=_MAC)) + " -j " + RETURN
        before, found_source, rest = with_source.partition(_SOURCE)
        between, found_mac, after = rest.partition(_MAC)
        assert found_source and found_mac, "the source is rendered before the MAC"
        without_source = match_text(Match(mac_source=_MAC)) + " -j " + RETURN
        mac_before, _, mac_after = without_source.partition(_MAC)
        drop = match_text(NO_MATCH) + " -j " + DROP
        _SPOOF_TAILS.append(((before, between, after), (mac_before, mac_after), drop))
    return _SPOOF_TAILS[0]


def prototype_key(
    port: Port,
    family: int,
    stateful: bool,
    ingress: tuple[Template, ...],
    egress: tuple[Template, ...],
    with_members: bool,
    compat: str = COMPAT_NEUTRON,
    log: PortLog | None = None,
) -> tuple[object, ...]:
    """What the text of a port's i and o chains depends on besides their names (see
    `PortChainBuilder.io_rules`); the template tuples by identity (the prototype holds them,
    so an id is not reused while the key lives)."""
    own = port.fixed_ips if with_members else None
    return (family, stateful, id(ingress), id(egress), port.dhcp_servers, own, compat, log)


def has_member_templates(templates: tuple[Template, ...]) -> bool:
    return any(template[3] is not None for template in templates)


class PortChainPrototype:
    """The i and o chain text shared by every port with the same `prototype_key`, rendered
    once with stand-ins for the chain names; a port's text is then two string replacements."""

    __slots__ = ("egress", "egress_parts", "ingress", "ingress_parts", "spoof_at")

    def __init__(
        self,
        prefix: str,
        port: Port,
        family: int,
        stateful: bool,
        ingress: tuple[Template, ...],
        egress: tuple[Template, ...],
        compat: str = COMPAT_NEUTRON,
        log: PortLog | None = None,
    ) -> None:
        context = PortContext(prefix, port.id)
        context.ingress, context.egress, context.spoof = _INGRESS_NAME, _EGRESS_NAME, _SPOOF_NAME
        builder = PortChainBuilder(prefix, port, family, stateful, context, compat, log)
        builder.log_port_id = _LOG_PORT_ID
        in_rules, out_rules = builder.io_rules(ingress, egress)
        self.ingress = ingress
        self.egress = egress
        # A port's text is these parts joined with its chain name (see chain_text); the
        # egress parts that jump to the anti-spoofing chain (one, usually) get its name too.
        self.ingress_parts = chain_text(in_rules).split(_INGRESS_NAME)
        self.egress_parts = chain_text(out_rules).split(_EGRESS_NAME)
        self.spoof_at = tuple(i for i, part in enumerate(self.egress_parts) if _SPOOF_NAME in part)


def rule_match(rule: SecurityGroupRule, remote_cidr: str | None, set_name: str | None) -> Match:
    if remote_cidr is not None and remote_cidr.endswith("/0"):
        remote_cidr = None  # "any address" is no constraint; iptables drops it too
    protocol = rule.protocol
    low, high = rule.port_range_min, rule.port_range_max
    destination_port = multiport = None
    icmp_type = icmp_code = None
    if takes_ports(protocol) and low is not None:
        high = low if high is None else high
        if low == high and protocol not in MULTIPORT_ONLY_PROTOCOLS:
            destination_port = PortRange(low, high)
        else:
            multiport = PortRange(low, high)
    elif takes_icmp_type(protocol) and low is not None:
        icmp_type, icmp_code = low, high
    ingress = rule.direction == INGRESS
    return Match(
        source=remote_cidr if ingress else None,
        destination=None if ingress else remote_cidr,
        protocol=protocol,
        destination_port=destination_port,
        multiport_destination=multiport,
        icmp_type=icmp_type,
        icmp_code=icmp_code,
        match_set=set_name,
        match_set_direction=IPSET_DIRECTION[rule.direction] if set_name else None,
    )


def merge_templates(groups: Sequence[tuple[Template, ...]]) -> tuple[Template, ...]:
    """The templates of a port's groups in group order, a rule that two groups share kept
    once (Neutron prunes such duplicates too). Templates are unique within a group."""
    if len(groups) == 1:
        return groups[0]
    seen: set[int] = set()
    merged = []
    for templates in groups:
        for template in templates:
            if id(template[0]) not in seen:
                seen.add(id(template[0]))
                merged.append(template)
    return tuple(merged)


def same_templates(old: tuple[Template, ...], new: tuple[Template, ...]) -> bool:
    if len(old) != len(new):
        return False
    return all(
        a[0] is b[0] and a[1] == b[1] and a[2] == b[2] and a[3] == b[3]
        for a, b in zip(old, new, strict=True)
    )
