"""NetworkNodeState <-> JSON, the wire format between the control plane and a network node's agent.

Like `sgweb.firewall.codec` for the port chains: the control plane stores one document per
network node, the agent decodes it and reports the sha256 of the very text it applied, so the
text must not depend on who encoded it. Output is canonical: sorted keys, fixed separators, and
the collections whose order means nothing to the compiler (routers, a router's interfaces and
groups, a group's ports) sorted, so two web servers building the same state from differently
ordered querysets publish the same digest. A policy's rules keep their order: that is the policy.
No Django, no I/O.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sgweb.firewall import docframe
from sgweb.firewall.fwaas.model import (
    FirewallGroup,
    FirewallPolicy,
    FirewallRule,
    NetworkNodeState,
    Router,
    RouterInterface,
    RouterState,
)

# Bumped when the document's shape changes incompatibly; an agent refuses what it cannot read
# rather than applying a misread firewall.
FORMAT_VERSION = 1


class CodecError(ValueError):
    """The text is not a NetworkNodeState document this version understands."""


# Fields holding a tuple of nested dataclasses. A group's policies are not nested: a policy is
# usually shared (one policy on the groups of 50 routers), so the document holds each policy
# once, under "policies", and a group names its policies by id. That keeps a node's document
# (and the agent's decode and digest check) proportional to the distinct rules, not to
# rules x groups.
_MANY: dict[type, dict[str, type]] = {
    Router: {"interfaces": RouterInterface},
    FirewallPolicy: {"rules": FirewallRule},
}
_POLICY_FIELDS = ("ingress_policy", "egress_policy")
_WHAT = "network node state"


def canonical(state: NetworkNodeState) -> NetworkNodeState:
    """The same state with every order-free collection sorted (see the module doc)."""
    routers = []
    for router_state in sorted(state.routers, key=lambda r: r.router.id):
        router = router_state.router
        interfaces = tuple(sorted(router.interfaces, key=lambda i: (i.port_id, i.subnet_id)))
        groups = tuple(
            dataclasses.replace(group, ports=tuple(sorted(set(group.ports))))
            for group in sorted(router_state.firewall_groups, key=lambda g: g.id)
        )
        routers.append(
            RouterState(router=dataclasses.replace(router, interfaces=interfaces),
                        firewall_groups=groups)
        )  # fmt: skip
    return NetworkNodeState(host=state.host, routers=tuple(routers))


def _encode_group(group: FirewallGroup, policies: dict[str, FirewallPolicy]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for f in dataclasses.fields(group):
        value = getattr(group, f.name)
        if f.name in _POLICY_FIELDS:
            if value is not None:
                known = policies.setdefault(value.id, value)
                if known != value:
                    raise ValueError(f"two different policies with id {value.id!r}")
                value = value.id
        else:
            value = docframe.encode(value)
        data[f.name] = value
    return data


def to_dict(state: NetworkNodeState) -> dict[str, Any]:
    state = canonical(state)
    policies: dict[str, FirewallPolicy] = {}
    routers = [
        {
            "router": docframe.encode(router.router),
            "firewall_groups": [_encode_group(g, policies) for g in router.firewall_groups],
        }
        for router in state.routers
    ]
    return {
        "format": FORMAT_VERSION,
        "host": state.host,
        "routers": routers,
        "policies": [docframe.encode(policies[key]) for key in sorted(policies)],
    }


def dumps(state: NetworkNodeState) -> str:
    """The canonical JSON text of a network node's router state."""
    return docframe.canonical_text(to_dict(state))


digest = docframe.digest  # sha256 hex of the canonical text; what the agent reports it applied


def _decode(cls: type, data: Any) -> Any:
    many = _MANY.get(cls, {})
    values: dict[str, Any] = {}
    for name, value in docframe.present_fields(cls, data, CodecError):
        if name in many:
            value = tuple(_decode(many[name], item) for item in _list(value, name))
        elif isinstance(value, list):
            value = tuple(value)
        values[name] = value
    return cls(**values)


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise CodecError(f"{what} must be a list")
    return value


def _decode_group(data: Any, policies: dict[str, FirewallPolicy]) -> FirewallGroup:
    if not isinstance(data, dict):
        raise CodecError("a firewall group must be a JSON object")
    named: dict[str, FirewallPolicy | None] = {}
    for name in _POLICY_FIELDS:
        policy_id = data.get(name)
        if policy_id is not None and policy_id not in policies:
            raise CodecError(f"firewall group names policy {policy_id!r}, which is not there")
        named[name] = policies[policy_id] if policy_id is not None else None
    rest = {key: value for key, value in data.items() if key not in _POLICY_FIELDS}
    group: FirewallGroup = _decode(FirewallGroup, rest)
    return dataclasses.replace(
        group, ingress_policy=named["ingress_policy"], egress_policy=named["egress_policy"]
    )


def from_dict(data: dict[str, Any]) -> NetworkNodeState:
    docframe.check_format(data, _WHAT, FORMAT_VERSION, CodecError)
    try:
        policies = {}
        for item in _list(data.get("policies", []), "policies"):
            policy = _decode(FirewallPolicy, item)
            policies[policy.id] = policy
        routers = []
        for item in _list(data.get("routers", []), "routers"):
            if not isinstance(item, dict):
                raise CodecError("a router state must be a JSON object")
            groups = _list(item.get("firewall_groups", []), "firewall_groups")
            routers.append(
                RouterState(
                    router=_decode(Router, item["router"]),
                    firewall_groups=tuple(_decode_group(g, policies) for g in groups),
                )
            )
        return NetworkNodeState(host=data["host"], routers=tuple(routers))
    except CodecError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CodecError(f"malformed network node state document: {exc!r}") from exc


def loads(text: str) -> NetworkNodeState:
    return from_dict(docframe.parse(text, _WHAT, CodecError))
