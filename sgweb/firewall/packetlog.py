"""Packet-log rules of a logged port (Neutron's logging API, event DROP / ACCEPT / ALL).

A logged port's i and o chains get NFLOG rules, each rate-limited with `-m limit` (Neutron's
defaults: 100 packets/s, burst 25) and sending to the family's NFLOG group with a prefix that
names event, direction and port:

- DROP: one rule right in front of the jump to the default drop (sg-fallback): every packet
  that reaches it is dropped, and the limit holds per port and direction.
- ACCEPT: a copy of each user rule's match in front of that rule. In a stateful chain only the
  first packet of a connection gets past RELATED,ESTABLISHED, so this logs the first packet of
  each accepted new connection; the copy carries the rule id in its Origin so counters and the
  tracer can tell which rule it precedes. Each copy has its own limit, so a port's ACCEPT log is
  bounded by the rate times its logged rules (a flood of one flow meets one of them). In a
  stateless chain nothing is tracked, so every accepted packet is a candidate (rate-limited).

NFLOG decides nothing: the packet goes on with the next rule, so the verdict of a logged port
is the verdict it had without logging. A port without logging gets no rule at all; its chains
stay byte-identical. Logged ports share chain prototypes like the others: the prototype's text
carries a stand-in for the port id in the prefixes (see portchains.PortChainPrototype).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sgweb.firewall import names
from sgweb.firewall.compiled_rules import new_rule
from sgweb.firewall.ir import (
    NFLOG,
    ORIGIN_LOG_ACCEPT,
    ORIGIN_LOG_DROP,
    ORIGIN_SG_RULE,
    Match,
    Origin,
    Rule,
)
from sgweb.firewall.model import LOG_ACCEPT, LOG_ALL, LOG_DROP, LogSettings


@dataclass(frozen=True, slots=True)
class PortLog:
    """What a logged port's chains need to know about logging, for one family."""

    events: str  # LOG_ALL | LOG_ACCEPT | LOG_DROP
    settings: LogSettings
    family: int

    @property
    def drops(self) -> bool:
        return self.events in (LOG_ALL, LOG_DROP)

    @property
    def accepts(self) -> bool:
        return self.events in (LOG_ALL, LOG_ACCEPT)


def nflog_args(event: str, direction: str, port_id: str, group: int) -> tuple[str, ...]:
    """NFLOG's target arguments as iptables-save prints them (the prefix always holds spaces,
    so it is always quoted)."""
    prefix = names.log_prefix(event, direction, port_id)
    return ("--nflog-prefix", '"' + prefix + '"', "--nflog-group", str(group))


def limited(match: Match, settings: LogSettings) -> Match:
    return replace(match, limit_rate=settings.rate, limit_burst=settings.burst)


def drop_log_rule(chain: str, port_id: str, direction: str, log: PortLog) -> Rule:
    """The NFLOG rule in front of the chain's jump to the default drop."""
    settings = log.settings
    args = nflog_args(LOG_DROP, direction, port_id, settings.nflog_group(log.family))
    origin = Origin(ORIGIN_LOG_DROP, port_id, direction)
    return new_rule(chain, limited(Match(), settings), NFLOG, origin, args)


def with_accept_logs(
    rules: list[Rule], start: int, port_id: str, direction: str, log: PortLog
) -> list[Rule]:
    """`rules` with an NFLOG copy in front of every user rule from `start` on."""
    settings = log.settings
    args = nflog_args(LOG_ACCEPT, direction, port_id, settings.nflog_group(log.family))
    # Many rules of a port share a Match (and ports share them): one limited copy per Match.
    copies: dict[int, Match] = {}
    out = rules[:start]
    for rule in rules[start:]:
        origin = rule.origin
        if origin.kind == ORIGIN_SG_RULE:
            match = copies.get(id(rule.match))
            if match is None:
                match = copies[id(rule.match)] = limited(rule.match, settings)
            group, rule_id, member = origin.group_id, origin.rule_id, origin.member
            log_origin = Origin(ORIGIN_LOG_ACCEPT, port_id, direction, group, rule_id, member)
            out.append(new_rule(rule.chain, match, NFLOG, log_origin, args))
        out.append(rule)
    return out
