"""The Neutron machinery's own routes (versions, index, extensions, and the 404 for everything
else) and `resource_routes`, with which each app declares the routes of its resources.

Everything is mounted at /networking by `sgweb.urls`: no trailing slashes, and a `.json`
suffix is accepted like Neutron. This module imports no app.
"""

from typing import Any

from django.urls import URLPattern, re_path

from sgweb.api import discovery
from sgweb.api.fielddocs import FieldMap
from sgweb.api.resource import Resource
from sgweb.api.schema import documented, documented_tags

ID = r"(?P<object_id>[^/.]+)"
JSON = r"(?:\.json)?"

urlpatterns = [
    re_path(r"^/?$", discovery.VersionsView.as_view(), name="neutron-versions"),
    re_path(r"^/v2\.0/?$", discovery.IndexView.as_view(), name="neutron-index"),
    re_path(rf"^/v2\.0/extensions{JSON}$", discovery.ExtensionsView.as_view()),
    re_path(rf"^/v2\.0/extensions/(?P<alias>[^/]+?){JSON}$", discovery.ExtensionView.as_view()),
]

# Last of all the /networking routes: Neutron's NotFound for anything no app claimed.
not_found = re_path(r"^/(?P<rest>.*)$", discovery.not_found)


def resource_routes(
    resource: Resource[Any], fields: FieldMap, writable: FieldMap
) -> list[URLPattern]:
    """A collection and a member route for one resource, with its OpenAPI documentation, and
    the tag routes when the resource has tags."""
    collection_view, member_view = documented(resource, fields, writable)
    routes = [
        re_path(
            rf"^/v2\.0/{resource.path}{JSON}$",
            collection_view.as_view(resource=resource),
            name=f"neutron-{resource.path}",
        ),
        re_path(
            rf"^/v2\.0/{resource.path}/{ID}{JSON}$",
            member_view.as_view(resource=resource),
            name=f"neutron-{resource.path}-detail",
        ),
    ]
    if resource.tag_model is not None:
        tags_view, tag_view = documented_tags(resource)
        routes += [
            re_path(
                rf"^/v2\.0/{resource.path}/{ID}/tags{JSON}$",
                tags_view.as_view(resource=resource),
                name=f"neutron-{resource.path}-tags",
            ),
            re_path(
                rf"^/v2\.0/{resource.path}/{ID}/tags/(?P<tag>[^/]+)$",
                tag_view.as_view(resource=resource),
                name=f"neutron-{resource.path}-tag",
            ),
        ]
    return routes
