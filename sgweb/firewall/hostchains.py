"""The host-wide filter chains: FORWARD and INPUT jumps per port, and the sg-chain.

They hold five rules per port (2,500 for 500 ports) that differ only in the device and the
port's chain names, so they are LazyChains like the port chains: their text is one rendered
physdev match with a stand-in for the device, filled in per port; their Rule objects are made
only when someone reads them (tracer, counters).
"""

from __future__ import annotations

from collections.abc import Sequence

from sgweb.firewall.compiled_rules import (
    NO_MATCH,
    PortContext,
    jump_match,
    new_origin,
    new_rule,
)
from sgweb.firewall.ir import (
    ACCEPT,
    ORIGIN_ACCEPT_UNFILTERED,
    ORIGIN_JUMP,
    ORIGIN_PORT_SECURITY_OFF,
    Chain,
    Match,
    Rule,
    lazy_chain,
    new_plain_chain,
)
from sgweb.firewall.model import EGRESS, INGRESS, Port
from sgweb.firewall.render import match_text

FORWARD, INPUT, SG_CHAIN = 0, 1, 2
_DEVICE = "\x00d\x00"  # stand-in for a device name; no rendered rule contains a NUL
_TAILS: list[tuple[str, str]] = []
_PHYSDEV_CACHE: dict[str, tuple[Match, Match]] = {}


def physdev_matches(device: str) -> tuple[Match, Match]:
    """(--physdev-out dev: towards the VM, --physdev-in dev: from the VM), both bridged."""
    cached = _PHYSDEV_CACHE.get(device)
    if cached is None:
        cached = (jump_match(physdev_out=device), jump_match(physdev_in=device))
        if len(_PHYSDEV_CACHE) > 100_000:
            _PHYSDEV_CACHE.clear()
        _PHYSDEV_CACHE[device] = cached
    return cached


def clear_caches() -> None:
    _PHYSDEV_CACHE.clear()


def _physdev_tails() -> tuple[str, str]:
    if not _TAILS:
        out_match, in_match = physdev_matches(_DEVICE)
        _TAILS.append((match_text(out_match), match_text(in_match)))
    return _TAILS[0]


def _device_tails(device: str) -> tuple[str, str]:
    if not device:  # not after validation; rendered the long way to stay exact
        out_match, in_match = physdev_matches(device)
        return match_text(out_match), match_text(in_match)
    out_tail, in_tail = _physdev_tails()
    return out_tail.replace(_DEVICE, device), in_tail.replace(_DEVICE, device)


class HostChains:
    """The FORWARD, INPUT and sg-chain of one host (a ChainSource for their LazyChains)."""

    __slots__ = ("filtered", "forward", "input", "made", "sg_chain", "texts", "unfiltered")

    def __init__(
        self,
        forward: str,
        input_: str,
        sg_chain: str,
        filtered: Sequence[tuple[Port, PortContext]],
        unfiltered: Sequence[Port],
    ) -> None:
        self.forward = forward
        self.input = input_
        self.sg_chain = sg_chain
        self.filtered = filtered
        self.unfiltered = unfiltered
        self.made: tuple[tuple[Rule, ...], ...] | None = None
        # Both families render these very chains: the text is made once.
        self.texts: dict[int, str] = {}

    def chains(self) -> tuple[Chain, Chain, Chain]:
        """(FORWARD, INPUT, sg-chain) of this host; empty ones are plain chains."""
        if not self.filtered and not self.unfiltered:
            return (
                new_plain_chain(self.forward, ()),
                new_plain_chain(self.input, ()),
                new_plain_chain(self.sg_chain, self.chain_rules(SG_CHAIN)),
            )
        return (
            lazy_chain(self.forward, self, FORWARD),
            lazy_chain(self.input, self, INPUT),
            lazy_chain(self.sg_chain, self, SG_CHAIN),
        )

    def chain_text(self, index: int) -> str:
        """`render.chain_text(self.chain_rules(index))`, without making the rules."""
        text = self.texts.get(index)
        if text is None:
            text = self.texts[index] = self._text(index)
        return text

    def _text(self, index: int) -> str:
        head = "-A " + (self.forward, self.input, self.sg_chain)[index]
        to_sg = " -j " + self.sg_chain
        accept = " -j " + ACCEPT
        lines: list[str] = []
        append = lines.append
        for port, context in self.filtered:
            out_tail, in_tail = _device_tails(port.device or "")
            if index == FORWARD:
                append(head + out_tail + to_sg)
                append(head + in_tail + to_sg)
            elif index == INPUT:
                append(head + in_tail + " -j " + context.egress)
            else:
                append(head + out_tail + " -j " + context.ingress)
                append(head + in_tail + " -j " + context.egress)
        if index == SG_CHAIN:
            append(head + match_text(NO_MATCH) + accept)
        else:
            for port in self.unfiltered:
                out_tail, in_tail = _device_tails(port.device or "")
                if index == FORWARD:
                    append(head + out_tail + accept)
                append(head + in_tail + accept)
        return "\n".join(lines)

    def chain_rules(self, index: int) -> tuple[Rule, ...]:
        if self.made is None:
            self.made = self._rules()
        return self.made[index]

    def _rules(self) -> tuple[tuple[Rule, ...], ...]:
        forward, input_, sg_chain = self.forward, self.input, self.sg_chain
        forward_rules: list[Rule] = []
        input_rules: list[Rule] = []
        sg_rules: list[Rule] = []
        for port, context in self.filtered:
            out_match, in_match = physdev_matches(port.device or "")
            ingress_origin = context(ORIGIN_JUMP, INGRESS)
            egress_origin = context(ORIGIN_JUMP, EGRESS)
            forward_rules.append(new_rule(forward, out_match, sg_chain, ingress_origin))
            forward_rules.append(new_rule(forward, in_match, sg_chain, egress_origin))
            input_rules.append(new_rule(input_, in_match, context.egress, egress_origin))
            sg_rules.append(new_rule(sg_chain, out_match, context.ingress, ingress_origin))
            sg_rules.append(new_rule(sg_chain, in_match, context.egress, egress_origin))
        sg_rules.append(new_rule(sg_chain, NO_MATCH, ACCEPT, new_origin(ORIGIN_ACCEPT_UNFILTERED)))
        for port in self.unfiltered:
            # Neutron: "Accept all packets when port security is disabled", in our FORWARD
            # chain so it holds even where the FORWARD policy is DROP.
            out_match, in_match = physdev_matches(port.device or "")
            ingress_origin = new_origin(ORIGIN_PORT_SECURITY_OFF, port.id, INGRESS)
            egress_origin = new_origin(ORIGIN_PORT_SECURITY_OFF, port.id, EGRESS)
            forward_rules.append(new_rule(forward, out_match, ACCEPT, ingress_origin))
            forward_rules.append(new_rule(forward, in_match, ACCEPT, egress_origin))
            input_rules.append(new_rule(input_, in_match, ACCEPT, egress_origin))
        return tuple(forward_rules), tuple(input_rules), tuple(sg_rules)
