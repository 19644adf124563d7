"""This app's Neutron routes (mounted at /networking by `sgweb.urls`)."""

from django.urls import re_path

from sgweb.api.urls import JSON, resource_routes
from sgweb.security.api import serializers as docs
from sgweb.security.api.quotas import (
    QuotaDefaultView,
    QuotaDetailsView,
    QuotaListView,
    QuotaView,
)
from sgweb.security.api.resources import SecurityGroupRules, SecurityGroups

PROJECT = r"(?P<project_id>[^/.]+)"

urlpatterns = [
    *resource_routes(SecurityGroups(), docs.GROUP_FIELDS, docs.GROUP_WRITABLE),
    *resource_routes(SecurityGroupRules(), docs.RULE_FIELDS, docs.RULE_WRITABLE),
    re_path(rf"^/v2\.0/quotas{JSON}$", QuotaListView.as_view(), name="neutron-quotas"),
    re_path(rf"^/v2\.0/quotas/{PROJECT}/details{JSON}$", QuotaDetailsView.as_view()),
    re_path(rf"^/v2\.0/quotas/{PROJECT}/default{JSON}$", QuotaDefaultView.as_view()),
    re_path(rf"^/v2\.0/quotas/{PROJECT}{JSON}$", QuotaView.as_view()),
]
