"""OpenStack Networking API v2.0 routes, mounted at /networking (no trailing slashes; a
`.json` suffix is accepted like Neutron)."""

from django.urls import re_path

from sgweb.api import discovery
from sgweb.api.schema import documented
from sgweb.networks.api import serializers as network_docs
from sgweb.networks.api.resources import Networks, Ports, Subnets
from sgweb.security.api import serializers as security_docs
from sgweb.security.api.resources import SecurityGroupRules, SecurityGroups
from sgweb.tenancy.api.resources import QuotaDetailsView, QuotaListView, QuotaView

RESOURCES = (
    (SecurityGroups(), security_docs.GROUP_FIELDS, security_docs.GROUP_WRITABLE),
    (SecurityGroupRules(), security_docs.RULE_FIELDS, security_docs.RULE_WRITABLE),
    (Networks(), network_docs.NETWORK_FIELDS, network_docs.NETWORK_WRITABLE),
    (Subnets(), network_docs.SUBNET_FIELDS, network_docs.SUBNET_WRITABLE),
    (Ports(), network_docs.PORT_FIELDS, network_docs.PORT_WRITABLE),
)
ID = r"(?P<object_id>[^/.]+)"
JSON = r"(?:\.json)?"

urlpatterns = [
    re_path(r"^/?$", discovery.VersionsView.as_view(), name="neutron-versions"),
    re_path(r"^/v2\.0/?$", discovery.IndexView.as_view(), name="neutron-index"),
    re_path(rf"^/v2\.0/extensions{JSON}$", discovery.ExtensionsView.as_view()),
    re_path(rf"^/v2\.0/extensions/(?P<alias>[^/]+?){JSON}$", discovery.ExtensionView.as_view()),
    re_path(rf"^/v2\.0/quotas{JSON}$", QuotaListView.as_view(), name="neutron-quotas"),
    re_path(rf"^/v2\.0/quotas/(?P<project_id>[^/.]+)/details{JSON}$", QuotaDetailsView.as_view()),
    re_path(rf"^/v2\.0/quotas/(?P<project_id>[^/.]+){JSON}$", QuotaView.as_view()),
]
for resource, fields, writable in RESOURCES:
    CollectionView, MemberView = documented(resource, fields, writable)
    urlpatterns += [
        re_path(
            rf"^/v2\.0/{resource.path}{JSON}$",
            CollectionView.as_view(resource=resource),
            name=f"neutron-{resource.path}",
        ),
        re_path(
            rf"^/v2\.0/{resource.path}/{ID}{JSON}$",
            MemberView.as_view(resource=resource),
            name=f"neutron-{resource.path}-detail",
        ),
    ]
urlpatterns.append(re_path(r"^/(?P<rest>.*)$", discovery.not_found))
