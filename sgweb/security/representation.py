"""Security groups and rules as Neutron's API dictionaries (also the audit snapshots)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sgweb.security.choices import DEFAULT_GROUP_NAME
from sgweb.security.models import SecurityGroup, SecurityGroupRule
from sgweb.tenancy.representation import standard_fields


def rule_to_dict(rule: SecurityGroupRule, *, default_group: bool | None = None) -> dict[str, Any]:
    data = {
        "id": str(rule.id),
        "security_group_id": str(rule.security_group_id),
        "direction": rule.direction,
        "ethertype": rule.ethertype,
        "protocol": rule.protocol,
        "port_range_min": rule.port_range_min,
        "port_range_max": rule.port_range_max,
        "remote_ip_prefix": rule.remote_ip_prefix,
        "normalized_cidr": rule.normalized_cidr,
        "remote_group_id": str(rule.remote_group_id) if rule.remote_group_id else None,
        "remote_address_group_id": None,
        "description": rule.description,
        **standard_fields(rule),
    }
    if default_group is not None:
        data["belongs_to_default_sg"] = default_group
    return data


def group_to_dict(
    group: SecurityGroup, rules: Iterable[SecurityGroupRule] | None = None
) -> dict[str, Any]:
    """`rules` defaults to `group.rules.all()` (prefetch it when listing)."""
    if rules is None:
        rules = group.rules.all()
    is_default = group.name == DEFAULT_GROUP_NAME
    return {
        "id": str(group.id),
        "name": group.name,
        "description": group.description,
        "stateful": group.stateful,
        "shared": False,
        "security_group_rules": [rule_to_dict(rule, default_group=is_default) for rule in rules],
        **standard_fields(group),
    }
