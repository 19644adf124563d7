"""A port's chains as the `chains` message of the live protocol (see PROTOCOL.md)."""

from __future__ import annotations

from typing import Any

from sgweb.firewall import names
from sgweb.firewall.ir import CompiledHost
from sgweb.firewall.model import HostState
from sgweb.firewall.render import render_rule
from sgweb.firewall.trace.labels import group_name, rule_label
from sgweb.hostsync.compiled import host_target
from sgweb.networks.models import Port
from sgweb.wire.live import chain_key

SPOOF_ROLE = "anti-spoofing"


def chain_roles(prefix: str, port_id: str) -> list[tuple[str, str]]:
    """(chain name, role) of a port's own chains, in the order the page shows them."""
    return [
        (names.ingress_chain(prefix, port_id), "ingress"),
        (names.egress_chain(prefix, port_id), "egress"),
        (names.spoof_chain(prefix, port_id), SPOOF_ROLE),
    ]


def port_chain_keys(prefix: str, port_id: str) -> list[str]:
    """The chain keys (`wire.chain_key`) a watcher of this port asks its host to read."""
    return [
        chain_key(family, "filter", name)
        for family in (4, 6)
        for name, _role in chain_roles(prefix, port_id)
    ]


def chains_of(compiled: CompiledHost, state: HostState, port_id: str) -> list[dict[str, Any]]:
    result = []
    for family in (4, 6):
        table = compiled.family(family).table("filter")
        if table is None:
            continue
        for name, role in chain_roles(compiled.chain_prefix, port_id):
            chain = table.chain(name)
            if chain is None:
                continue
            rules = []
            for position, rule in enumerate(chain.rules, start=1):
                origin = rule.origin
                rules.append(
                    {
                        "position": position,
                        "text": render_rule(rule),
                        "label": rule_label(rule, state),
                        "kind": origin.kind,
                        "rule_id": origin.rule_id,
                        "group_id": origin.group_id,
                        "group_name": group_name(state, origin.group_id),
                    }
                )
            result.append(
                {"name": name, "family": family, "table": "filter", "role": role, "rules": rules}
            )
    return result


def port_chains(port: Port) -> dict[str, Any]:
    """The `chains` message for a port: its i/o/s chains of both families, each rule labelled.

    A port bound to no host, or with port security off, has no chains (an empty list)."""

    message: dict[str, Any] = {
        "type": "chains",
        "port_id": str(port.pk),
        "host": port.host.name if port.host is not None else None,
        "device": port.device,
        "chains": [],
    }
    if port.host is None or not port.port_security_enabled:
        return message
    target = host_target(port.host)
    message["chains"] = chains_of(target.compiled, target.state, str(port.pk))
    return message
