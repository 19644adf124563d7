"""Compiled rules as `iptables-restore` / `ipset restore` text.

Arguments come in the order iptables-save prints them (-s -d -i -p, then matches in the order
given, comment, -j), measured against iptables 1.8.9 (nf_tables), so that a kernel dump of our
chains compares equal to what we rendered. One exception: iptables-nft saves `--mac-source` in
lower case while the article (and Neutron) print it upper case; we keep the article's form.
"""

from __future__ import annotations

from collections.abc import Callable

from sgweb.firewall.compiled_rules import gc_paused
from sgweb.firewall.ir import Chain, CompiledHost, IpSet, LazyChain, Match, Rule

# hash:net, not the article's hash:ip: allowed-address-pair CIDRs (IPv6 ones too) are members.
IPSET_TYPE = "hash:net"
IPSET_HASHSIZE = 1024
IPSET_MAXELEM = 65536
ICMP_TYPE_ANY = 255

_PORT_MATCH_MODULE = {"tcp": "tcp", "udp": "udp", "sctp": "sctp", "dccp": "dccp"}

# id(match) -> (match, text). The stored match keeps its id from being reused, so the key
# stays valid; matches are shared by many rules, so most rules render by lookup.
_MATCH_TEXT: dict[int, tuple[Match, str]] = {}
_MATCH_TEXT_LIMIT = 200_000


def match_text(match: Match) -> str:
    """The rule's match arguments with a leading space ("" for a rule matching everything)."""
    cached = _MATCH_TEXT.get(id(match))
    if cached is not None and cached[0] is match:
        return cached[1]
    text = _render_match(match)
    if len(_MATCH_TEXT) >= _MATCH_TEXT_LIMIT:
        _MATCH_TEXT.clear()
    _MATCH_TEXT[id(match)] = (match, text)
    return text


def clear_caches() -> None:
    _MATCH_TEXT.clear()
    _TAILS.clear()
    _CHAIN_TEXT.clear()


def _port_range(value) -> str:  # type: ignore[no-untyped-def]
    return str(value.low) if value.single else f"{value.low}:{value.high}"


def _render_match(match: Match) -> str:
    parts: list[str] = []
    add = parts.append
    if match.source is not None:
        add(" -s " + match.source)
    if match.destination is not None:
        add(" -d " + match.destination)
    if match.in_interface is not None:
        add(" -i " + match.in_interface)
    protocol = match.protocol
    if protocol is not None:
        add(" -p " + protocol)
    if match.physdev_in or match.physdev_out or match.physdev_is_bridged or match.physdev_is_in:
        _render_physdev(match, add)
    if match.mac_source is not None:
        add(" -m mac --mac-source " + match.mac_source)
    if match.source_port is not None or match.destination_port is not None:
        _render_ports(match, protocol, add)
    if match.multiport_destination is not None:
        add(" -m multiport --dports " + _port_range(match.multiport_destination))
    if match.icmp_type is not None:
        _render_icmp(match, protocol, add)
    if match.match_set is not None:
        add(f" -m set --match-set {match.match_set} {match.match_set_direction}")
    if match.states:
        add(" -m state --state " + ",".join(match.states))
    if match.limit_rate is not None:
        add(f" -m limit --limit {match.limit_rate}/sec --limit-burst {match.limit_burst}")
    return "".join(parts)


def _render_physdev(match: Match, add: Callable[[str], None]) -> None:
    add(" -m physdev")
    if match.physdev_is_in:
        add(" --physdev-is-in")
    if match.physdev_in:
        add(" --physdev-in " + match.physdev_in)
    if match.physdev_out:
        add(" --physdev-out " + match.physdev_out)
    if match.physdev_is_bridged:
        add(" --physdev-is-bridged")


def _render_ports(match: Match, protocol: str | None, add: Callable[[str], None]) -> None:
    module = _PORT_MATCH_MODULE.get(protocol or "")
    if module is None:
        raise ValueError(f"protocol {protocol!r} has no port match")
    add(" -m " + module)
    if match.source_port is not None:
        add(" --sport " + _port_range(match.source_port))
    if match.destination_port is not None:
        add(" --dport " + _port_range(match.destination_port))


def _render_icmp(match: Match, protocol: str | None, add: Callable[[str], None]) -> None:
    code = "" if match.icmp_code is None else f"/{match.icmp_code}"
    if protocol == "ipv6-icmp":
        add(f" -m icmp6 --icmpv6-type {match.icmp_type}{code}")
    else:
        shown = "any" if match.icmp_type == ICMP_TYPE_ANY and not code else match.icmp_type
        add(f" -m icmp --icmp-type {shown}{code}")


def _quote(comment: str) -> str:
    # Comments are built from fixed phrases and ids; quotes are the only thing to guard.
    return '"' + comment.replace('"', "'") + '"'


def render_rule(rule: Rule) -> str:
    """One `-A CHAIN ...` line (no newline), as iptables-save prints it."""
    return "-A " + rule.chain + _tail(rule)


# id(chain) -> (chain, its -A lines). Both families share the host-wide chains, and a compile
# cache hands back unchanged chains, so most renders after the first are lookups.
_CHAIN_TEXT: dict[int, tuple[Chain, str]] = {}
_CHAIN_TEXT_LIMIT = 50_000


def rendered_chain(chain: Chain) -> str:
    """The -A lines of a (non-empty) chain, newline-separated, memoised per chain object."""
    if type(chain) is LazyChain:
        return chain.text()
    cached = _CHAIN_TEXT.get(id(chain))
    if cached is not None and cached[0] is chain:
        return cached[1]
    text = chain_text(chain.rules)
    if len(_CHAIN_TEXT) >= _CHAIN_TEXT_LIMIT:
        _CHAIN_TEXT.clear()
    _CHAIN_TEXT[id(chain)] = (chain, text)
    return text


def chain_text(rules: tuple[Rule, ...]) -> str:
    """The -A lines of one chain's rules, newline-separated (the hot loop of every render)."""
    # Most rules are "<match> -j TARGET": the match text is rendered once per Match object
    # (shared by every port using a group) and joined with the target. Rules with a comment
    # or target arguments render their whole tail once per (match, target, comment, args).
    # The caches hold the match itself, so its id cannot be reused while cached.
    matches = _MATCH_TEXT
    tails = _TAILS
    texts: list[str] = []
    append = texts.append
    for rule in rules:
        match = rule.match
        if rule.comment is None and not rule.target_args:
            cached_match = matches.get(id(match))
            if cached_match is None or cached_match[0] is not match:
                append(match_text(match) + " -j " + rule.target)
            else:
                append(cached_match[1] + " -j " + rule.target)
            continue
        key = (id(match), rule.target, rule.comment, rule.target_args)
        cached = tails.get(key)
        if cached is None or cached[0] is not match:
            cached = (match, _tail(rule))
            if len(tails) >= _MATCH_TEXT_LIMIT:
                tails.clear()
            tails[key] = cached
        append(cached[1])
    head = "-A " + rules[0].chain
    return head + ("\n" + head).join(texts)


_TAILS: dict[tuple[object, ...], tuple[Match, str]] = {}


def _tail(rule: Rule) -> str:
    comment = "" if rule.comment is None else " -m comment --comment " + _quote(rule.comment)
    args = "".join(" " + arg for arg in rule.target_args)
    return f"{match_text(rule.match)}{comment} -j {rule.target}{args}"


def render_iptables(
    compiled: CompiledHost, family: int, *, include_builtin_jumps: bool = True
) -> str:
    """Complete `iptables-restore` (family 4) / `ip6tables-restore` (6) input: *raw then
    *filter, our chain declarations, every rule, COMMIT. Applied with --noflush into a fresh
    namespace it yields exactly the compiled state; the built-in chains only get our jumps."""
    lines: list[str] = []
    with gc_paused():
        _render_tables(compiled, family, include_builtin_jumps, lines)
    if not lines:
        return "\n"
    lines.append("")  # the final newline, without copying megabytes of text once more
    return "\n".join(lines)


def _render_tables(
    compiled: CompiledHost, family: int, include_builtin_jumps: bool, lines: list[str]
) -> None:
    append = lines.append
    for table in sorted(compiled.family(family).tables, key=_table_order):
        append("*" + table.name)
        lines.extend([f":{chain.name} - [0:0]" for chain in table.chains if chain.owned])
        for chain in table.chains:
            if type(chain) is LazyChain:
                # Nearly every chain (three per port): `rendered_chain` inlined, as a lazy
                # chain always has rules and is always ours.
                append(chain.source.chain_text(chain.index))
            elif chain.rules and (chain.owned or include_builtin_jumps):
                append(rendered_chain(chain))
        append("COMMIT")


def has_rules(chain: Chain) -> bool:
    """Whether the chain has rules, without making a LazyChain's (a port chain always has)."""
    return type(chain) is LazyChain or bool(chain.rules)


def rule_count(chain: Chain) -> int:
    """How many rules the chain has, without making a LazyChain's: one -A line each."""
    if type(chain) is LazyChain:
        text = chain.text()
        return text.count("\n") + 1 if text else 0
    return len(chain.rules)


def _table_order(table) -> int:  # type: ignore[no-untyped-def]
    return 0 if table.name == "raw" else 1


def ipset_create_line(name: str, family: str) -> str:
    return (
        f"create {name} {IPSET_TYPE} family {family} hashsize {IPSET_HASHSIZE} "
        f"maxelem {IPSET_MAXELEM} -exist"
    )


def ipset_member_lines(name: str, members: tuple[str, ...], out: list[str]) -> None:
    prefix = "add " + name + " "
    out.extend(prefix + member + " -exist" for member in members)


def render_ipsets(compiled: CompiledHost) -> str:
    """`ipset restore` input creating every referenced set with its members (idempotent)."""
    lines: list[str] = []
    for ipset in compiled.ipsets:
        render_ipset(ipset, lines)
    return "".join(line + "\n" for line in lines)


def render_ipset(ipset: IpSet, out: list[str], name: str | None = None) -> None:
    name = name or ipset.name
    out.append(ipset_create_line(name, ipset.family))
    ipset_member_lines(name, ipset.members, out)
