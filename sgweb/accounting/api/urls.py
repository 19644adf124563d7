"""This app's routes beside the Neutron resources (mounted at /networking by `sgweb.urls`)."""

from django.urls import re_path

from sgweb.accounting.api.firewall import FirewallPolicyHitsView, FirewallRuleHitsView
from sgweb.accounting.api.views import GroupHitsView, PortHitsView, RuleHitsView
from sgweb.api.urls import ID, JSON

urlpatterns = [
    re_path(rf"^/v2\.0/security-group-rules/{ID}/hits{JSON}$", RuleHitsView.as_view(),
            name="neutron-rule-hits"),
    re_path(rf"^/v2\.0/security-groups/{ID}/hits{JSON}$", GroupHitsView.as_view(),
            name="neutron-group-hits"),
    re_path(rf"^/v2\.0/ports/{ID}/hits{JSON}$", PortHitsView.as_view(), name="neutron-port-hits"),
    re_path(rf"^/v2\.0/fwaas/firewall_rules/{ID}/hits{JSON}$", FirewallRuleHitsView.as_view(),
            name="fwaas-rule-hits"),
    re_path(rf"^/v2\.0/fwaas/firewall_policies/{ID}/hits{JSON}$",
            FirewallPolicyHitsView.as_view(), name="fwaas-policy-hits"),
]  # fmt: skip
