"""Security groups and rules as Neutron's API dictionaries (also the audit snapshots).

The `*_row` variants take `.values()` rows so that listings of thousands of rules build no
model instances; the model variants go through them, so both always agree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sgweb.security.choices import DEFAULT_GROUP_NAME
from sgweb.security.models import SecurityGroup, SecurityGroupRule
from sgweb.tenancy.representation import standard_fields, standard_fields_of_row

RULE_COLUMNS = (
    "id",
    "security_group_id",
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "normalized_cidr",
    "remote_group_id",
    "description",
    "project_id",
    "created_at",
    "updated_at",
    "revision_number",
)


def rule_row_to_dict(row: dict[str, Any], *, default_group: bool | None = None) -> dict[str, Any]:
    remote_group = row["remote_group_id"]
    data = {
        "id": str(row["id"]),
        "security_group_id": str(row["security_group_id"]),
        "direction": row["direction"],
        "ethertype": row["ethertype"],
        "protocol": row["protocol"],
        "port_range_min": row["port_range_min"],
        "port_range_max": row["port_range_max"],
        "remote_ip_prefix": row["remote_ip_prefix"],
        "normalized_cidr": row["normalized_cidr"],
        "remote_group_id": str(remote_group) if remote_group else None,
        "remote_address_group_id": None,
        "description": row["description"],
        **standard_fields_of_row(row),
    }
    if default_group is not None:
        data["belongs_to_default_sg"] = default_group
    return data


def rule_to_dict(rule: SecurityGroupRule, *, default_group: bool | None = None) -> dict[str, Any]:
    return rule_row_to_dict(
        {column: getattr(rule, column) for column in RULE_COLUMNS}, default_group=default_group
    )


def group_to_dict(
    group: SecurityGroup, rules: Iterable[SecurityGroupRule] | None = None
) -> dict[str, Any]:
    """`rules` defaults to `group.rules.all()`."""
    if rules is None:
        rules = group.rules.all()
    is_default = group.name == DEFAULT_GROUP_NAME
    return _group_dict(group, [rule_to_dict(rule, default_group=is_default) for rule in rules])


def _group_dict(group: SecurityGroup, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": str(group.id),
        "name": group.name,
        "description": group.description,
        "stateful": group.stateful,
        "shared": False,
        "security_group_rules": rules,
        **standard_fields(group),
    }


def groups_to_dicts(groups: Sequence[SecurityGroup]) -> list[dict[str, Any]]:
    """Many groups with their rules: one query for all the rules, as rows."""
    by_group: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    if groups:
        defaults = {group.id for group in groups if group.name == DEFAULT_GROUP_NAME}
        rows = (
            SecurityGroupRule.objects.filter(security_group_id__in=[g.id for g in groups])
            .order_by("created_at", "id")
            .values(*RULE_COLUMNS)
        )
        for row in rows:
            group_id = row["security_group_id"]
            by_group[group_id].append(rule_row_to_dict(row, default_group=group_id in defaults))
    return [_group_dict(group, by_group.get(group.id, [])) for group in groups]
