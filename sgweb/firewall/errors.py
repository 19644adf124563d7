"""The one error the firewall package raises for input the kernel would refuse.

Each error is structured: the object (kind and id), the field, a stable `code` and the
`values` it is about. The English `problem` serves the CLI and logs; the control plane maps
codes to Neutron's own wording (`sgweb.security.validators`) instead of checking again.
"""

from __future__ import annotations

from typing import Any

# The codes of the rule contract (`validate.rule_problems`), with the values each carries.
RULE_CODES: dict[str, str] = {
    "bad-id": "an id that is not letters, digits and '_.:-'",
    "direction": "value: not ingress or egress",
    "ethertype": "value: not IPv4 or IPv6",
    "unknown-protocol": "protocol: a name nobody knows",
    "protocol-number-range": "protocol: a number outside 0-255",
    "protocol-family": "protocol, ethertype: ICMPv6 or an IPv6 header in an IPv4 rule",
    "not-an-integer": "a port or ICMP field that is not a whole number",
    "port-max-without-min": "max: a maximum port with no minimum",
    "port-out-of-range": "port: outside 1-65535",
    "port-range-reversed": "min, max: the minimum above the maximum",
    "icmp-code-without-type": "icmp_code: an ICMP code with no type",
    "icmp-out-of-range": "kind (type or code), value: outside 0-255",
    "no-ports-for-protocol": "protocol (None: any): ports for a protocol without them",
    "prefix-and-group": "both a remote prefix and a remote group",
    "bad-cidr": "value: not an address or CIDR",
    "cidr-family": "value, ethertype: a CIDR of the other family",
}


class FirewallError(ValueError):
    """Invalid desired state; the message names the object (kind and id) and the field.

    A ValueError so that form/serializer code can treat it like any other validation error.
    """

    def __init__(
        self,
        kind: str,
        object_id: str | None,
        field: str | None,
        problem: str,
        code: str = "invalid",
        values: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.object_id = object_id
        self.field = field
        self.problem = problem
        self.code = code
        self.values = dict(values or {})
        where = kind if object_id is None else f"{kind} {object_id}"
        if field:
            where = f"{where}, field {field}"
        super().__init__(f"{where}: {problem}")


def rule_error(
    rule_id: str, field: str | None, problem: str, code: str = "invalid", **values: Any
) -> FirewallError:
    assert code in RULE_CODES or code == "invalid", code
    return FirewallError("security group rule", rule_id, field, problem, code, values)


def port_error(port_id: str, field: str | None, problem: str) -> FirewallError:
    return FirewallError("port", port_id, field, problem)


def group_error(group_id: str, field: str | None, problem: str) -> FirewallError:
    return FirewallError("security group", group_id, field, problem)
