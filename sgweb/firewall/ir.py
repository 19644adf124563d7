"""The compiler's output before it becomes text: tables of chains of structured rules.

The compiler produces these; `render` turns them into `iptables-restore` / `ipset restore` text;
the tracer walks them the way netfilter would; counters and traces map kernel rule positions back
to `Origin`s. Rendering is the only place that knows iptables syntax, so a `Match` holds values,
not argument strings.

Positions: the n-th rule (1-based) of a chain in `Chain.rules` is the n-th rule the kernel shows
for that chain (`iptables -L CHAIN -v -x -n`), because we own every chain we emit whole.
Built-in chains (INPUT, FORWARD, OUTPUT, PREROUTING) are the exception: we only put our jump
rules in them, and never assume positions there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

# Targets that are not chains.
ACCEPT = "ACCEPT"
DROP = "DROP"
RETURN = "RETURN"
CT = "CT"  # raw table: conntrack zone / notrack, see Rule.target_args
# Packet logging: copies the packet to an NFLOG group (see Rule.target_args) and goes on with
# the next rule; it decides nothing.
NFLOG = "NFLOG"
BUILTIN_TARGETS = frozenset({ACCEPT, DROP, RETURN, CT, NFLOG})

BUILTIN_CHAINS = frozenset({"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"})

# Origin kinds: what a rule is for, in words the dashboard can show.
ORIGIN_JUMP = "jump"  # plumbing: built-in chain -> ours, FORWARD -> sg-chain, sg-chain -> port
ORIGIN_ACCEPT_UNFILTERED = "accept-unfiltered"  # sg-chain's final ACCEPT for non-port traffic
ORIGIN_PORT_SECURITY_OFF = "port-security-off"
ORIGIN_INVALID = "invalid"
ORIGIN_ESTABLISHED = "established"
ORIGIN_DHCP = "dhcp"  # DHCP/DHCPv6 replies in, client requests out
ORIGIN_DHCP_SPOOF = "dhcp-server-spoof"  # the VM acting as a DHCP server: dropped
ORIGIN_ICMPV6 = "icmpv6"  # neighbour discovery, MLD, router advertisements in
ORIGIN_RA_SPOOF = "ra-spoof"  # router advertisements from the VM: dropped
ORIGIN_ANTI_SPOOF = "anti-spoofing"  # the s-chain: allowed IP/MAC returns and its final DROP
ORIGIN_SG_RULE = "sg-rule"  # a user security group rule
ORIGIN_FALLBACK = "fallback"  # jump to sg-fallback / its DROP
ORIGIN_CONNTRACK_ZONE = "conntrack-zone"
ORIGIN_NOTRACK = "notrack"  # a stateless group's conntrack bypass
ORIGIN_LOG_DROP = "log-drop"  # NFLOG in front of a logged port's default drop
ORIGIN_LOG_ACCEPT = "log-accept"  # NFLOG in front of a logged port's user rule (rule_id set)


@dataclass(frozen=True, slots=True)
class Origin:
    kind: str
    port_id: str | None = None
    direction: str | None = None  # "ingress" | "egress" from the VM's point of view
    group_id: str | None = None
    rule_id: str | None = None  # the security group rule id, for ORIGIN_SG_RULE
    # Set when one security group rule expanded into several kernel rules (ipset off: one per
    # remote group member); the member address this kernel rule stands for.
    member: str | None = None


@dataclass(frozen=True, slots=True)
class PortRange:
    low: int
    high: int

    @property
    def single(self) -> bool:
        return self.low == self.high


@dataclass(frozen=True, slots=True)
class Match:
    """Everything a rule matches on. None / empty means "not matched on"."""

    source: str | None = None  # CIDR as rendered, e.g. "90.1.180.3/32"
    destination: str | None = None
    in_interface: str | None = None  # -i
    protocol: str | None = None  # "tcp", "udp", "icmp", "ipv6-icmp", or a number as a string
    source_port: PortRange | None = None  # --sport (tcp/udp match)
    destination_port: PortRange | None = None  # --dport for a single port
    multiport_destination: PortRange | None = None  # -m multiport --dports LOW:HIGH
    icmp_type: int | None = None  # --icmp-type / --icmpv6-type
    icmp_code: int | None = None
    physdev_in: str | None = None
    physdev_out: str | None = None
    physdev_is_bridged: bool = False
    # -m physdev --physdev-is-in: the packet entered through any bridge port (raw table: the
    # conntrack zone of traffic arriving on the bridge from elsewhere, i.e. towards the VMs)
    physdev_is_in: bool = False
    states: tuple[str, ...] = ()  # -m state --state, e.g. ("RELATED", "ESTABLISHED")
    mac_source: str | None = None  # -m mac --mac-source, rendered upper-case like iptables-save
    match_set: str | None = None  # -m set --match-set NAME DIR
    match_set_direction: str | None = None  # "src" | "dst"
    # -m limit --limit N/sec --limit-burst B (packet-log rules only)
    limit_rate: int | None = None
    limit_burst: int | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    chain: str
    match: Match
    target: str  # a chain name or one of BUILTIN_TARGETS
    origin: Origin
    # CT target arguments, e.g. ("--zone", "4097") or ("--notrack",)
    target_args: tuple[str, ...] = ()
    comment: str | None = None  # machine-made only (ids and fixed phrases), never user text


@dataclass(frozen=True, slots=True)
class Chain:
    name: str
    rules: tuple[Rule, ...]
    owned: bool = True  # False for built-in chains, where we only add our jumps


class ChainSource(Protocol):
    """Where a LazyChain's rules and text come from (see sgweb.firewall.portchains)."""

    def chain_rules(self, index: int) -> tuple[Rule, ...]: ...

    def chain_text(self, index: int) -> str: ...


_chain_rules = Chain.__dict__["rules"]
_chain_name = Chain.__dict__["name"]
_chain_owned = Chain.__dict__["owned"]


class LazyChain(Chain):
    """A Chain whose Rule objects are made the first time someone reads `rules`.

    A host of 500 ports has ~29k rules, nearly all in per-port chains that are rendered and
    diffed as text and seldom walked rule by rule (the tracer, counters and drift checks do,
    for the chains they look at). Making those rules only on demand is most of the compile's
    speed, and the garbage collector never has to walk objects that were never made. The
    source renders the same text as `render.chain_text(chain.rules)`, byte for byte
    (tests/firewall/test_saved_compiles.py and test_lazy_chains.py keep it so).
    """

    __slots__ = ("index", "source")
    index: int
    source: ChainSource

    def __init__(self, name: str, source: ChainSource, index: int) -> None:
        _chain_name.__set__(self, name)
        _chain_rules.__set__(self, None)
        _chain_owned.__set__(self, True)
        _lazy_source.__set__(self, source)
        _lazy_index.__set__(self, index)

    @property
    def rules(self) -> tuple[Rule, ...]:
        rules: tuple[Rule, ...] | None = _chain_rules.__get__(self)
        if rules is None:
            rules = self.source.chain_rules(self.index)
            _chain_rules.__set__(self, rules)
        return rules

    @property
    def materialized(self) -> bool:
        return _chain_rules.__get__(self) is not None

    def text(self) -> str:
        """The chain's -A lines, newline-separated, without making its rules."""
        return self.source.chain_text(self.index)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Chain):
            return NotImplemented
        return (self.name, self.owned, self.rules) == (other.name, other.owned, other.rules)

    __hash__ = Chain.__hash__

    def __repr__(self) -> str:
        return f"LazyChain(name={self.name!r}, rules={self.rules!r}, owned={self.owned!r})"


_lazy_source = LazyChain.__dict__["source"]
_lazy_index = LazyChain.__dict__["index"]


# The slots' setters, bound once: looking `__set__` up on each call doubled lazy_chain's cost.
_set_name = _chain_name.__set__
_set_rules = _chain_rules.__set__
_set_owned = _chain_owned.__set__
_set_source = _lazy_source.__set__
_set_index = _lazy_index.__set__


def lazy_chain(name: str, source: ChainSource, index: int) -> LazyChain:
    """LazyChain(name, source, index), built without the constructor call (hot loop: three
    per port and family)."""
    chain = _new_object(LazyChain)
    _set_name(chain, name)
    _set_rules(chain, None)
    _set_owned(chain, True)
    _set_source(chain, source)
    _set_index(chain, index)
    return chain


def new_plain_chain(name: str, rules: tuple[Rule, ...], owned: bool = True) -> Chain:
    return Chain(name, rules, owned)


_new_object = object.__new__


@dataclass(frozen=True, slots=True)
class Table:
    name: str  # "filter" | "raw"
    chains: tuple[Chain, ...]

    def chain(self, name: str) -> Chain | None:
        for chain in self.chains:
            if chain.name == name:
                return chain
        return None


@dataclass(frozen=True, slots=True)
class IpSet:
    name: str  # "IPv4" / "IPv6" + the first 20 characters of the group id (article 3.3.4)
    family: str  # "inet" | "inet6"
    members: tuple[str, ...]  # sorted, deterministic
    group_id: str = ""
    # When the compiler made these members from another set's by adding and removing a few:
    # (that set's `ipset_token`, the entries added, the entries removed), so the diff against
    # that set writes its add/del lines without comparing thousands of members again (or
    # making a LazyIpSet's tuple). Not content.
    edit: tuple[object, tuple[str, ...], tuple[str, ...]] | None = field(
        default=None, compare=False, repr=False
    )


class SetSource(Protocol):
    """Where a LazyIpSet's members come from (see sgweb.firewall.setentries)."""

    def entries(self) -> tuple[str, ...]: ...

    def __len__(self) -> int: ...


_ipset_fields = {
    name: IpSet.__dict__[name] for name in ("name", "family", "members", "group_id", "edit")
}


class LazyIpSet(IpSet):
    """An IpSet whose sorted members tuple is made the first time someone reads `members`.

    A join to a group of 50,000 edits one entry; the diff writes its add/del lines from `edit`
    and the size from the source, so only a render of the whole set, the drift check or the
    tracer pays for the tuple (once: the source caches it). Equal to an IpSet of the same
    content, as LazyChain is to a Chain.
    """

    __slots__ = ("source",)
    source: SetSource

    def __init__(
        self,
        name: str,
        family: str,
        source: SetSource | None = None,
        group_id: str = "",
        edit: tuple[object, tuple[str, ...], tuple[str, ...]] | None = None,
        *,
        members: tuple[str, ...] | None = None,  # what dataclasses.replace hands over
    ) -> None:
        if source is None:
            if members is None:
                raise TypeError("LazyIpSet needs a source or its members")
            source = _FixedEntries(members)
        _ipset_fields["name"].__set__(self, name)
        _ipset_fields["family"].__set__(self, family)
        _ipset_fields["members"].__set__(self, members)
        _ipset_fields["group_id"].__set__(self, group_id)
        _ipset_fields["edit"].__set__(self, edit)
        LazyIpSet.__dict__["source"].__set__(self, source)

    @property
    def members(self) -> tuple[str, ...]:
        members: tuple[str, ...] | None = _ipset_fields["members"].__get__(self)
        if members is None:
            members = self.source.entries()
            _ipset_fields["members"].__set__(self, members)
        return members

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IpSet):
            return NotImplemented
        return (self.name, self.family, self.group_id) == (
            other.name,
            other.family,
            other.group_id,
        ) and self.members == other.members

    __hash__ = IpSet.__hash__

    def __repr__(self) -> str:
        return f"LazyIpSet(name={self.name!r}, family={self.family!r}, members={self.members!r})"


class _FixedEntries:
    __slots__ = ("_entries",)

    def __init__(self, entries: tuple[str, ...]) -> None:
        self._entries = entries

    def entries(self) -> tuple[str, ...]:
        return self._entries

    def __len__(self) -> int:
        return len(self._entries)


def ipset_token(ipset: IpSet) -> object:
    """What stands for a set's content by identity (`IpSet.edit[0]` names the set an edit
    started from): a lazy set's source, else the members tuple (neither makes a tuple)."""
    if isinstance(ipset, LazyIpSet):
        return ipset.source
    return ipset.members


def ipset_size(ipset: IpSet) -> int:
    """How many members, without making a lazy set's tuple."""
    if isinstance(ipset, LazyIpSet):
        return len(ipset.source)
    return len(ipset.members)


@dataclass(frozen=True, slots=True)
class CompiledFamily:
    family: int  # 4 | 6
    tables: tuple[Table, ...]

    def table(self, name: str) -> Table | None:
        for table in self.tables:
            if table.name == name:
                return table
        return None


@dataclass(frozen=True, slots=True)
class CompiledHost:
    v4: CompiledFamily
    v6: CompiledFamily
    ipsets: tuple[IpSet, ...] = field(default=())
    chain_prefix: str = "neutron-openvswi"
    # The remote groups whose members this compile edited from the last one's: (group id, the
    # members tuple as given before, as given now, the normalised values that left), so the
    # conntrack cuts need not compare thousands of members again. Not content.
    member_edits: tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = field(
        default=(), compare=False, repr=False
    )

    def family(self, family: int) -> CompiledFamily:
        return self.v4 if family == 4 else self.v6
