"""Security groups and rules in the Neutron API."""

from __future__ import annotations

from typing import Any

from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from rest_framework.request import Request

from sgweb.api.query import (
    Filter,
    as_bool,
    as_int,
    as_nullable_text,
    as_uuid,
    constant,
    driver_rows,
)
from sgweb.api.resource import (
    PROJECT_FILTERS,
    STANDARD_SORTS,
    Resource,
    project_for_create,
    required_field,
)
from sgweb.api.tagquery import tags_of_children
from sgweb.security import actions
from sgweb.security.choices import DEFAULT_GROUP_NAME
from sgweb.security.models import SecurityGroup, SecurityGroupRule
from sgweb.security.representation import (
    GROUP_COLUMNS,
    RULE_COLUMNS,
    group_rows_for_listing,
    group_rows_to_dicts,
    groups_to_dicts,
    rule_row_to_dict,
    rule_to_dict,
)
from sgweb.tenancy.access import member_project_ids, role_of
from sgweb.tenancy.choices import Role
from sgweb.tenancy.errors import Invalid


def _in_default_group(values: list[str]) -> Q:
    """belongs_to_default_sg=true|false"""
    wanted = {as_bool(value) for value in values}
    in_default = Q(security_group__name=DEFAULT_GROUP_NAME)
    if wanted == {True}:
        return in_default
    if wanted == {False}:
        return ~in_default
    return Q()


class SecurityGroups(Resource[SecurityGroup]):
    singular = "security_group"
    plural = "security_groups"
    path = "security-groups"
    not_found_type = "SecurityGroupNotFound"
    not_found_message = "Security group {id} does not exist"
    filters = {
        **PROJECT_FILTERS,
        "id": Filter("id", as_uuid),
        "name": Filter("name"),
        "stateful": Filter("stateful", as_bool),
        # security-groups-shared-filtering: groups shared with the caller's project through
        # RBAC. We have no RBAC for groups, so none is shared.
        "shared": constant(False, as_bool),
    }
    sortable = STANDARD_SORTS
    tag_model = SecurityGroup
    create_fields = {"name": "name", "description": "description", "stateful": "stateful"}
    update_fields = create_fields
    read_only = Resource.read_only | {"security_group_rules", "shared"}
    list_columns = GROUP_COLUMNS

    def queryset(self, request: Request) -> QuerySet[SecurityGroup]:
        return self.scoped(request, SecurityGroup.objects.all())

    def to_dicts(self, objs: list[SecurityGroup]) -> list[dict[str, Any]]:
        return groups_to_dicts(objs)

    def rows_to_dicts(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return group_rows_to_dicts(rows)

    def fetch_rows(self, queryset: QuerySet[Any]) -> list[Any]:
        return driver_rows(queryset)

    def rows_for_listing(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # The rules as JSON kept per group revision, written into the page as they are.
        return self.with_tags(group_rows_for_listing(rows))

    def with_tags(self, dicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        dicts = super().with_tags(dicts)
        if not dicts:
            return dicts
        tagged = tags_of_children(
            SecurityGroupRule, "security_group", [data["id"] for data in dicts]
        )
        if not tagged:
            return dicts  # every rule says "tags": [] already
        for data in dicts:
            rules = list(data["security_group_rules"])
            if any(rule["id"] in tagged for rule in rules):
                for rule in rules:
                    rule["tags"] = tagged.get(rule["id"], [])
                data["security_group_rules"] = rules
        return dicts

    def before_list(self, request: Request) -> None:
        # Neutron creates a project's default group the first time its members look.
        if role_of(request.user) == Role.MEMBER:
            actions.ensure_default_groups(member_project_ids(request.user))

    def create(self, request: Request, body: dict[str, Any]) -> SecurityGroup:
        project = project_for_create(request, body)
        values = self.map_fields(body, self.create_fields)
        if "name" not in values:
            values["name"] = ""
        return actions.create_security_group(request.user, project, **values)

    def update(self, request: Request, obj: SecurityGroup, body: dict[str, Any]) -> SecurityGroup:
        values = self.map_fields(body, self.update_fields, current=self.present([obj])[0])
        return actions.update_security_group(request.user, obj, **values)

    def delete(self, request: Request, obj: SecurityGroup) -> None:
        actions.delete_security_group(request.user, obj)


class SecurityGroupRules(Resource[SecurityGroupRule]):
    singular = "security_group_rule"
    plural = "security_group_rules"
    path = "security-group-rules"
    not_found_type = "SecurityGroupRuleNotFound"
    not_found_message = "Security group rule {id} does not exist"
    filters = {
        **PROJECT_FILTERS,
        "id": Filter("id", as_uuid),
        "security_group_id": Filter("security_group_id", as_uuid),
        "direction": Filter("direction"),
        "ethertype": Filter("ethertype"),
        "protocol": Filter("protocol", as_nullable_text),
        "port_range_min": Filter("port_range_min", as_int),
        "port_range_max": Filter("port_range_max", as_int),
        "remote_ip_prefix": Filter("remote_ip_prefix", as_nullable_text),
        "normalized_cidr": Filter("normalized_cidr", as_nullable_text),
        "remote_group_id": Filter("remote_group_id", as_uuid),
        "remote_address_group_id": constant(None, as_nullable_text),
        "belongs_to_default_sg": Filter("", build=_in_default_group),
    }
    sortable = {
        "id": "id",
        "direction": "direction",
        "ethertype": "ethertype",
        "protocol": "protocol",
        "port_range_min": "port_range_min",
        "port_range_max": "port_range_max",
        "security_group_id": "security_group_id",
        "created_at": "created_at",
        "tenant_id": "project_id",
        "project_id": "project_id",
    }
    create_fields = {
        "direction": "direction",
        "ethertype": "ethertype",
        "protocol": "protocol",
        "port_range_min": "port_range_min",
        "port_range_max": "port_range_max",
        "remote_ip_prefix": "remote_ip_prefix",
        "remote_group_id": "remote_group_id",
        "description": "description",
    }
    read_only = Resource.read_only | {
        "security_group_id",
        "normalized_cidr",
        "remote_address_group_id",
        "belongs_to_default_sg",
    }

    tag_model = SecurityGroupRule

    def queryset(self, request: Request) -> QuerySet[SecurityGroupRule]:
        # Whether the rule's group is its project's default group, in the same query.
        in_default = ExpressionWrapper(
            Q(security_group__name=DEFAULT_GROUP_NAME), output_field=BooleanField()
        )
        rules = SecurityGroupRule.objects.annotate(in_default_group=in_default)
        return self.scoped(request, rules)

    # Read by the driver (`driver_rows`): a page of 100 rules made 400 uuid.UUID objects.
    list_columns = (*RULE_COLUMNS, "in_default_group")

    def fetch_rows(self, queryset: QuerySet[Any]) -> list[Any]:
        return driver_rows(queryset)

    def rows_to_dicts(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # SQLite gives the annotation as 0 or 1.
        return [rule_row_to_dict(row, default_group=bool(row["in_default_group"])) for row in rows]

    def to_dict(self, obj: SecurityGroupRule) -> dict[str, Any]:
        in_default = getattr(obj, "in_default_group", None)
        if in_default is None:
            in_default = obj.security_group.name == DEFAULT_GROUP_NAME
        return rule_to_dict(obj, default_group=bool(in_default))

    def create(self, request: Request, body: dict[str, Any]) -> SecurityGroupRule:
        group_id = body.get("security_group_id")
        if not group_id:
            raise required_field("security_group_id")
        group = SecurityGroups().get_object(request, str(group_id))
        if body.get("remote_address_group_id"):
            raise Invalid("Invalid input for operation: remote address groups are not supported.")
        fields = {
            key: value
            for key, value in body.items()
            if key not in ("security_group_id", "remote_address_group_id")
        }
        values = self.map_fields(fields, self.create_fields)
        return actions.create_security_group_rule(request.user, group, **values)

    def delete(self, request: Request, obj: SecurityGroupRule) -> None:
        actions.delete_security_group_rule(request.user, obj)
