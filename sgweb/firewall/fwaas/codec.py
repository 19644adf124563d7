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
import hashlib
import json
from typing import Any

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


# Fields holding nested dataclasses: a tuple of them, or one (None allowed where the model says).
_MANY: dict[type, dict[str, type]] = {
    NetworkNodeState: {"routers": RouterState},
    RouterState: {"firewall_groups": FirewallGroup},
    Router: {"interfaces": RouterInterface},
    FirewallPolicy: {"rules": FirewallRule},
}
_ONE: dict[type, dict[str, type]] = {
    RouterState: {"router": Router},
    FirewallGroup: {"ingress_policy": FirewallPolicy, "egress_policy": FirewallPolicy},
}


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


def _encode(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [_encode(item) for item in obj]
    return obj


def to_dict(state: NetworkNodeState) -> dict[str, Any]:
    data: dict[str, Any] = _encode(canonical(state))
    data["format"] = FORMAT_VERSION
    return data


def dumps(state: NetworkNodeState) -> str:
    """The canonical JSON text of a network node's router state."""
    return json.dumps(to_dict(state), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def digest(text: str) -> str:
    """sha256 hex of the canonical text; what the agent reports it applied."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _decode(cls: type, data: Any) -> Any:
    if not isinstance(data, dict):
        raise CodecError(f"{cls.__name__} must be a JSON object, not {type(data).__name__}")
    many = _MANY.get(cls, {})
    one = _ONE.get(cls, {})
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue  # the model's default applies
        value = data[f.name]
        if f.name in many:
            if not isinstance(value, list):
                raise CodecError(f"{cls.__name__}.{f.name} must be a list")
            value = tuple(_decode(many[f.name], item) for item in value)
        elif f.name in one:
            value = None if value is None else _decode(one[f.name], value)
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def from_dict(data: dict[str, Any]) -> NetworkNodeState:
    if not isinstance(data, dict):
        raise CodecError("a network node state document must be a JSON object")
    version = data.get("format")
    if version != FORMAT_VERSION:
        raise CodecError(f"network node state format {version!r} is not {FORMAT_VERSION}")
    try:
        state = _decode(NetworkNodeState, data)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CodecError):
            raise
        raise CodecError(f"malformed network node state document: {exc!r}") from exc
    assert isinstance(state, NetworkNodeState)
    return state


def loads(text: str) -> NetworkNodeState:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CodecError(f"network node state is not JSON: {exc}") from exc
    return from_dict(data)
