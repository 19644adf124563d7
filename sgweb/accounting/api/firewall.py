"""The hits of firewall rules (issue 16), beside the FWaaS resources and shaped like the
security-group rule hits (`views`): same window, step and end, same errors.

* ``GET /v2.0/fwaas/firewall_rules/{id}/hits``     one rule: totals summed over the routers and
                                                   network nodes that hold it, first and last
                                                   hit, its series over the window
* ``GET /v2.0/fwaas/firewall_policies/{id}/hits``  every rule of a policy, in policy order

Tenancy: readers may read; a caller sees the hits of its projects' rules and policies only. A
shared rule or policy is visible to every project, but its hits are summed over every router
that uses it, other projects' too, so they are its own project's to read (and admins'): another
project gets 404 for a shared rule's hits, and a policy's listing shows a rule of another
project (a shared one in it) without its numbers (`hits_hidden`).
"""

from __future__ import annotations

import time
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sgweb.accounting import series
from sgweb.accounting.api.views import (
    ERRORS,
    PARAMETERS,
    SERIES_NOTE,
    usage_fields,
    visible_and_span,
)
from sgweb.accounting.models import FirewallRuleSample, FirewallRuleUsage
from sgweb.fwaas.models import FirewallPolicy, FirewallRule
from sgweb.tenancy.access import can_see_project


def firewall_rule_hits(
    rule: FirewallRule, usage: FirewallRuleUsage | None, values: dict[str, list[int]],
    now: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "id": str(rule.id),
        "name": rule.name,
        "project_id": rule.project_id.hex,
        **usage_fields(usage, rule.created_at, values, now),
    }


class FirewallRuleHitsView(APIView):
    @extend_schema(
        operation_id="show_firewall_rule_hits", tags=["rule hits"],
        parameters=PARAMETERS, responses={200: OpenApiTypes.OBJECT, **ERRORS},
        description="A firewall rule's hits summed over the routers and network nodes that hold "
        "it since it was created, its first and last hit, and its series over the window. A "
        "shared rule's hits are its own project's to read. " + SERIES_NOTE,
    )  # fmt: skip
    def get(self, request: Request, object_id: str) -> Response:
        message = f"Firewall Rule {object_id} could not be found."
        rule, span = visible_and_span(request, FirewallRule, object_id, message)
        values = series.rule_series([rule.id], span, model=FirewallRuleSample)[rule.id]
        usage = FirewallRuleUsage.objects.filter(rule=rule).first()
        body = {**firewall_rule_hits(rule, usage, values), "window": span.as_dict()}
        return Response({"firewall_rule_hits": body})


class FirewallPolicyHitsView(APIView):
    @extend_schema(
        operation_id="show_firewall_policy_hits", tags=["rule hits"],
        parameters=PARAMETERS, responses={200: OpenApiTypes.OBJECT, **ERRORS},
        description="The hits of every rule of a firewall policy, in policy order (`position`), "
        "as for one rule; a shared rule of another project is listed with `hits_hidden` and no "
        "numbers. " + SERIES_NOTE,
    )  # fmt: skip
    def get(self, request: Request, object_id: str) -> Response:
        message = f"Firewall Policy {object_id} could not be found."
        policy, span = visible_and_span(request, FirewallPolicy, object_id, message)
        links = list(policy.rule_links.select_related("rule").order_by("position"))
        shown = [link.rule for link in links if can_see_project(request.user, link.rule.project_id)]
        ids = [rule.id for rule in shown]
        values = series.rule_series(ids, span, model=FirewallRuleSample)
        usage = series.usage_of(ids, model=FirewallRuleUsage)
        now = time.time()
        rules = []
        for link in links:
            rule = link.rule
            if rule.id in values:
                entry = firewall_rule_hits(rule, usage.get(rule.id), values[rule.id], now)
            else:
                entry = {"id": str(rule.id), "name": rule.name, "hits_hidden": True}
            rules.append({"position": link.position, **entry})
        body = {"id": str(policy.id), "window": span.as_dict(), "rules": rules}
        return Response({"firewall_policy_hits": body})
