"""This app's Neutron routes (mounted at /networking by `sgweb.urls`)."""

from django.urls import re_path

from sgweb.api.urls import ID, JSON, resource_routes
from sgweb.fwaas.api import serializers as docs
from sgweb.fwaas.api.resources import (
    FirewallGroups,
    FirewallPolicies,
    FirewallRules,
    InsertRuleView,
    RemoveRuleView,
)

POLICY = r"^/v2\.0/fwaas/firewall_policies/"

urlpatterns = [
    re_path(rf"{POLICY}{ID}/insert_rule{JSON}$", InsertRuleView.as_view(), name="fwaas-insert"),
    re_path(rf"{POLICY}{ID}/remove_rule{JSON}$", RemoveRuleView.as_view(), name="fwaas-remove"),
    *resource_routes(FirewallRules(), docs.RULE_FIELDS, docs.RULE_WRITABLE),
    *resource_routes(FirewallPolicies(), docs.POLICY_FIELDS, docs.POLICY_WRITABLE),
    *resource_routes(FirewallGroups(), docs.GROUP_FIELDS, docs.GROUP_WRITABLE),
]
