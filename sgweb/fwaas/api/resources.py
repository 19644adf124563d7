"""FWaaS v2 in the Neutron API: /v2.0/fwaas/firewall_rules, firewall_policies (with
insert_rule and remove_rule) and firewall_groups."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sgweb.api.query import Filter, NoMatch, as_bool, as_int, as_nullable_text, as_uuid
from sgweb.api.resource import PROJECT_FILTERS, STANDARD_SORTS, Resource, project_for_create
from sgweb.fwaas import actions
from sgweb.fwaas.choices import FirewallGroupStatus
from sgweb.fwaas.models import FirewallGroup, FirewallPolicy, FirewallRule, PolicyRule
from sgweb.fwaas.representation import (
    group_status,
    group_to_dict,
    policy_to_dict,
    rule_to_dict,
)
from sgweb.networks.api.resources import Ports
from sgweb.tenancy.errors import Invalid

OBJECT_ID = OpenApiParameter("object_id", OpenApiTypes.UUID, OpenApiParameter.PATH)

NAMED = {**PROJECT_FILTERS, "id": Filter("id", as_uuid), "name": Filter("name")}
NOT_BODY = ("project_id", "tenant_id")


def _ids(values: list[str]) -> list[Any]:
    found = []
    for value in values:
        try:
            found.append(as_uuid(value))
        except NoMatch:
            continue
    return found


def _in_policies(values: list[str]) -> Q:
    return Q(pk__in=PolicyRule.objects.filter(policy_id__in=_ids(values)).values("rule_id"))


def _with_rules(values: list[str]) -> Q:
    return Q(pk__in=PolicyRule.objects.filter(rule_id__in=_ids(values)).values("policy_id"))


def _with_ports(values: list[str]) -> Q:
    return Q(port_links__port_id__in=_ids(values))


def _group_status(values: list[str]) -> Q:
    """Statuses are derived from the routers' nodes; filter in Python on the few groups."""
    wanted = set(values) & set(FirewallGroupStatus.values)
    ids = [group.pk for group in FirewallGroup.objects.all() if group_status(group) in wanted]
    return Q(pk__in=ids)


def _body_without(body: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in (*NOT_BODY, *keys)}


class FirewallRules(Resource[FirewallRule]):
    singular = "firewall_rule"
    plural = "firewall_rules"
    path = "fwaas/firewall_rules"
    not_found_type = "FirewallRuleNotFound"
    not_found_message = "Firewall Rule {id} could not be found."
    filters = {
        **NAMED,
        "protocol": Filter("protocol", as_nullable_text),
        "ip_version": Filter("ip_version", as_int),
        "action": Filter("action"),
        "enabled": Filter("enabled", as_bool),
        "shared": Filter("shared", as_bool),
        "source_ip_address": Filter("source_ip_address", as_nullable_text),
        "destination_ip_address": Filter("destination_ip_address", as_nullable_text),
        "source_port": Filter("source_port", as_nullable_text),
        "destination_port": Filter("destination_port", as_nullable_text),
        "firewall_policy_id": Filter("", build=_in_policies),
    }
    sortable = STANDARD_SORTS
    create_fields = {field: field for field in actions.RULE_FIELDS}
    update_fields = create_fields
    read_only = Resource.read_only | {"firewall_policy_id"}

    def queryset(self, request: Request) -> QuerySet[FirewallRule]:
        rules = FirewallRule.objects.prefetch_related("policy_links")
        return self.scoped_or_shared(request, rules, Q(shared=True))

    def to_dict(self, obj: FirewallRule) -> dict[str, Any]:
        return rule_to_dict(obj)

    def _fields(self, body: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        # Remote firewall groups as sources or destinations are not supported: only empty.
        for key in ("source_firewall_group_id", "destination_firewall_group_id"):
            if body.get(key) is not None:
                raise Invalid(
                    f"Invalid input for operation: {key} is not supported.",
                    errors={key: ["Not supported."]},
                )
        fields = _body_without(body, "source_firewall_group_id", "destination_firewall_group_id")
        return self.map_fields(fields, self.create_fields, current=current)

    def create(self, request: Request, body: dict[str, Any]) -> FirewallRule:
        project = project_for_create(request, body)
        return actions.create_rule(request.user, project, **self._fields(body, None))

    def update(self, request: Request, obj: FirewallRule, body: dict[str, Any]) -> FirewallRule:
        values = self._fields(body, self.to_dict(obj))
        return actions.update_rule(request.user, obj, **values)

    def delete(self, request: Request, obj: FirewallRule) -> None:
        actions.delete_rule(request.user, obj)


def _rules(request: Request, ids: object) -> list[FirewallRule]:
    if ids is None:
        return []
    if not isinstance(ids, list):
        raise Invalid(
            "Invalid input for operation: firewall_rules must be a list of rule ids.",
            errors={"firewall_rules": ["A list of rule ids."]},
        )
    return [FirewallRules().get_object(request, str(rule_id)) for rule_id in ids]


class FirewallPolicies(Resource[FirewallPolicy]):
    singular = "firewall_policy"
    plural = "firewall_policies"
    path = "fwaas/firewall_policies"
    not_found_type = "FirewallPolicyNotFound"
    not_found_message = "Firewall Policy {id} could not be found."
    filters = {
        **NAMED,
        "shared": Filter("shared", as_bool),
        "audited": Filter("audited", as_bool),
        "firewall_rules": Filter("", build=_with_rules),
    }
    sortable = STANDARD_SORTS
    create_fields = {
        "name": "name",
        "description": "description",
        "shared": "shared",
        "audited": "audited",
    }
    update_fields = create_fields

    def queryset(self, request: Request) -> QuerySet[FirewallPolicy]:
        policies = FirewallPolicy.objects.prefetch_related("rule_links")
        return self.scoped_or_shared(request, policies, Q(shared=True))

    def to_dict(self, obj: FirewallPolicy) -> dict[str, Any]:
        return policy_to_dict(obj)

    def create(self, request: Request, body: dict[str, Any]) -> FirewallPolicy:
        project = project_for_create(request, body)
        values = self.map_fields(_body_without(body, "firewall_rules"), self.create_fields)
        rules = _rules(request, body.get("firewall_rules"))
        return actions.create_policy(request.user, project, firewall_rules=rules, **values)

    def update(self, request: Request, obj: FirewallPolicy, body: dict[str, Any]) -> FirewallPolicy:
        values = self.map_fields(
            _body_without(body, "firewall_rules"), self.update_fields, current=self.to_dict(obj)
        )
        if "firewall_rules" in body:
            values["firewall_rules"] = _rules(request, body["firewall_rules"])
        return actions.update_policy(request.user, obj, **values)

    def delete(self, request: Request, obj: FirewallPolicy) -> None:
        actions.delete_policy(request.user, obj)


def _policy(request: Request, policy_id: object) -> FirewallPolicy | None:
    if policy_id in (None, ""):
        return None
    return FirewallPolicies().get_object(request, str(policy_id))


class FirewallGroups(Resource[FirewallGroup]):
    singular = "firewall_group"
    plural = "firewall_groups"
    path = "fwaas/firewall_groups"
    not_found_type = "FirewallGroupNotFound"
    not_found_message = "Firewall Group {id} could not be found."
    filters = {
        **NAMED,
        "shared": Filter("shared", as_bool),
        "admin_state_up": Filter("admin_state_up", as_bool),
        "ingress_firewall_policy_id": Filter("ingress_policy_id", as_uuid),
        "egress_firewall_policy_id": Filter("egress_policy_id", as_uuid),
        "ports": Filter("", build=_with_ports),
        "status": Filter("", build=_group_status),
    }
    sortable = STANDARD_SORTS
    create_fields = {
        "name": "name",
        "description": "description",
        "admin_state_up": "admin_state_up",
        "shared": "shared",
    }
    update_fields = create_fields
    read_only = Resource.read_only | {"status"}

    def queryset(self, request: Request) -> QuerySet[FirewallGroup]:
        groups = FirewallGroup.objects.prefetch_related(
            "port_links__port__router_interface__router__host"
        )
        return self.scoped_or_shared(request, groups, Q(shared=True))

    def to_dict(self, obj: FirewallGroup) -> dict[str, Any]:
        return group_to_dict(obj)

    def _values(
        self, request: Request, body: dict[str, Any], current: dict[str, Any] | None
    ) -> dict[str, Any]:
        special = ("ingress_firewall_policy_id", "egress_firewall_policy_id", "ports")
        values = self.map_fields(_body_without(body, *special), self.create_fields, current=current)
        for key, keyword in (
            ("ingress_firewall_policy_id", "ingress_policy"),
            ("egress_firewall_policy_id", "egress_policy"),
        ):
            if key in body:
                values[keyword] = _policy(request, body[key])
        if "ports" in body:
            ports = body["ports"] or []
            if not isinstance(ports, list):
                raise Invalid(
                    "Invalid input for operation: ports must be a list of port ids.",
                    errors={"ports": ["A list of port ids."]},
                )
            values["ports"] = [Ports().get_object(request, str(port)) for port in ports]
        return values

    def create(self, request: Request, body: dict[str, Any]) -> FirewallGroup:
        project = project_for_create(request, body)
        return actions.create_group(request.user, project, **self._values(request, body, None))

    def update(self, request: Request, obj: FirewallGroup, body: dict[str, Any]) -> FirewallGroup:
        values = self._values(request, body, self.to_dict(obj))
        return actions.update_group(request.user, obj, **values)

    def delete(self, request: Request, obj: FirewallGroup) -> None:
        actions.delete_group(request.user, obj)


def _rule_ref(request: Request, body: dict[str, Any], key: str) -> FirewallRule | None:
    value = body.get(key)
    return FirewallRules().get_object(request, str(value)) if value else None


class _PolicyRuleView(APIView):
    def _policy_and_body(
        self, request: Request, object_id: str, allowed: set[str]
    ) -> tuple[FirewallPolicy, dict[str, Any], FirewallRule]:
        policy = FirewallPolicies().get_object(request, object_id)
        body = request.data
        if not isinstance(body, dict) or not body:
            raise Invalid("Resource body required")
        unknown = set(body) - allowed
        if unknown:
            raise Invalid(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'")
        rule = _rule_ref(request, body, "firewall_rule_id")
        if rule is None:
            raise Invalid(
                "Invalid input for operation: firewall_rule_id is required.",
                errors={"firewall_rule_id": ["This field is required."]},
            )
        return policy, body, rule


class InsertRuleView(_PolicyRuleView):
    """PUT .../firewall_policies/{id}/insert_rule: answers the policy itself (no envelope)."""

    @extend_schema(
        operation_id="insert_firewall_rule",
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT},
        tags=["fwaas"],
        parameters=[OBJECT_ID],
    )
    def put(self, request: Request, object_id: str) -> Response:
        keys = {"firewall_rule_id", "insert_before", "insert_after"}
        policy, body, rule = self._policy_and_body(request, object_id, keys)
        before = _rule_ref(request, body, "insert_before")
        after = _rule_ref(request, body, "insert_after")
        with transaction.atomic():
            actions.insert_rule(
                request.user, policy, rule, insert_before=before, insert_after=after
            )
        fresh = FirewallPolicies().get_object(request, object_id)
        return Response(policy_to_dict(fresh))


class RemoveRuleView(_PolicyRuleView):
    @extend_schema(
        operation_id="remove_firewall_rule",
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT},
        tags=["fwaas"],
        parameters=[OBJECT_ID],
    )
    def put(self, request: Request, object_id: str) -> Response:
        policy, _, rule = self._policy_and_body(request, object_id, {"firewall_rule_id"})
        with transaction.atomic():
            actions.remove_rule(request.user, policy, rule)
        fresh = FirewallPolicies().get_object(request, object_id)
        return Response(policy_to_dict(fresh))
