"""The one error the firewall package raises for input the kernel would refuse."""

from __future__ import annotations


class FirewallError(ValueError):
    """Invalid desired state; the message names the object (kind and id) and the field.

    A ValueError so that form/serializer code can treat it like any other validation error.
    """

    def __init__(self, kind: str, object_id: str | None, field: str | None, problem: str) -> None:
        self.kind = kind
        self.object_id = object_id
        self.field = field
        self.problem = problem
        where = kind if object_id is None else f"{kind} {object_id}"
        if field:
            where = f"{where}, field {field}"
        super().__init__(f"{where}: {problem}")


def rule_error(rule_id: str, field: str | None, problem: str) -> FirewallError:
    return FirewallError("security group rule", rule_id, field, problem)


def port_error(port_id: str, field: str | None, problem: str) -> FirewallError:
    return FirewallError("port", port_id, field, problem)


def group_error(group_id: str, field: str | None, problem: str) -> FirewallError:
    return FirewallError("security group", group_id, field, problem)
