"""Security groups and rules as Neutron's API dictionaries (also the audit snapshots).

The `*_row` variants take `.values()` rows so that listings of thousands of rules build no
model instances; the model variants go through them, so both always agree.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sgweb.api.renderers import RenderedList
from sgweb.security.choices import DEFAULT_GROUP_NAME
from sgweb.security.models import SecurityGroup, SecurityGroupRule
from sgweb.tenancy.representation import standard_fields_of_row, uuid_text

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
        "id": uuid_text(row["id"]),
        "security_group_id": uuid_text(row["security_group_id"]),
        "direction": row["direction"],
        "ethertype": row["ethertype"],
        "protocol": row["protocol"],
        "port_range_min": row["port_range_min"],
        "port_range_max": row["port_range_max"],
        "remote_ip_prefix": row["remote_ip_prefix"],
        "normalized_cidr": row["normalized_cidr"],
        "remote_group_id": uuid_text(remote_group) if remote_group else None,
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
    return _group_row_dict(group_row(group), rules)


# The columns of a group a list reads as `.values()` rows.
GROUP_COLUMNS = (
    "id",
    "name",
    "description",
    "stateful",
    "project_id",
    "created_at",
    "updated_at",
    "revision_number",
)


def group_row(group: SecurityGroup) -> dict[str, Any]:
    return {column: getattr(group, column) for column in GROUP_COLUMNS}


def _group_row_dict(
    row: dict[str, Any], rules: list[dict[str, Any]] | RenderedList
) -> dict[str, Any]:
    return {
        "id": uuid_text(row["id"]),
        "name": row["name"],
        "description": row["description"],
        "stateful": row["stateful"],
        "shared": False,
        "security_group_rules": rules,
        **standard_fields_of_row(row),
    }


class GroupRulesCache:
    """The rules of groups, rendered to JSON, by group revision (per process, bounded).

    A group's rules change only through actions that bump its revision (a rule created or
    deleted, a remote group deleted with its referencing rules; Neutron's rules are otherwise
    immutable), so (id, revision, updated_at) names one exact list of rules. A listing page
    of 100 groups embeds thousands of rules: converting them from rows and writing their JSON
    is most of its cost, and most of them did not change since the last listing, so each
    group's list is kept as its JSON (`RenderedList`, every rule with no tags: a listing adds
    the page's rule tags). Entries of older revisions are never asked for again and age out."""

    def __init__(self, max_groups: int = 20_000) -> None:
        self.max_groups = max_groups
        self.entries: OrderedDict[tuple[Any, ...], RenderedList] = OrderedDict()

    @staticmethod
    def key(group: dict[str, Any]) -> tuple[Any, ...]:
        """`group` is the group's row (`GROUP_COLUMNS`). A row read by the driver (a list
        page) and one read by Django (a group shown alone) name the same state with keys that
        differ: each keeps its own entry."""
        return (group["id"], group["revision_number"], group["updated_at"], group["name"])

    def get(self, group: dict[str, Any]) -> RenderedList | None:
        key = self.key(group)
        rules = self.entries.get(key)
        if rules is not None:
            self.entries.move_to_end(key)
        return rules

    def put(self, group: dict[str, Any], rules: RenderedList) -> None:
        self.entries[self.key(group)] = rules
        while len(self.entries) > self.max_groups:
            self.entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()


group_rules_cache = GroupRulesCache()


def groups_to_dicts(groups: Sequence[SecurityGroup]) -> list[dict[str, Any]]:
    """Many groups with their rules: see `group_rows_to_dicts`."""
    return group_rows_to_dicts([group_row(group) for group in groups])


def group_rows_to_dicts(groups: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Many groups (their `GROUP_COLUMNS` rows) with their rules as dictionaries (copies the
    caller may change): see `group_rows_for_listing`."""
    listed = group_rows_for_listing(groups)
    for data in listed:
        data["security_group_rules"] = data["security_group_rules"].values()
    return listed


def group_rows_for_listing(groups: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Many groups (their `GROUP_COLUMNS` rows, read by Django or by the driver), each with
    its rules as a `RenderedList`: the rules of groups whose revision was seen before come
    from `group_rules_cache`, the others from one query, as rows."""
    known: dict[str, RenderedList] = {}
    missing = []
    for group in groups:
        cached = group_rules_cache.get(group)
        if cached is None:
            missing.append(group)
        else:
            known[uuid_text(group["id"])] = cached
    if missing:
        # By the ids' text: the groups' rows may hold the driver's values, the rules' Django's.
        by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
        defaults = {
            uuid_text(group["id"]) for group in missing if group["name"] == DEFAULT_GROUP_NAME
        }
        rows = (
            SecurityGroupRule.objects.filter(security_group_id__in=[g["id"] for g in missing])
            .order_by("created_at", "id")
            .values(*RULE_COLUMNS)
        )
        for row in rows:
            group_id = uuid_text(row["security_group_id"])
            by_group[group_id].append(rule_row_to_dict(row, default_group=group_id in defaults))
        for group in missing:
            group_id = uuid_text(group["id"])
            known[group_id] = rules = RenderedList(by_group.get(group_id, []))
            group_rules_cache.put(group, rules)
    return [_group_row_dict(group, known[uuid_text(group["id"])]) for group in groups]
