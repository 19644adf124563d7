"""This app's Neutron routes (mounted at /networking by `sgweb.urls`)."""

from django.urls import re_path

from sgweb.api.urls import JSON, resource_routes
from sgweb.packetlogs.api import serializers as docs
from sgweb.packetlogs.api.resources import LoggableResourcesView, Logs

urlpatterns = [
    *resource_routes(Logs(), docs.LOG_FIELDS, docs.LOG_WRITABLE),
    re_path(
        rf"^/v2\.0/log/loggable-resources{JSON}$",
        LoggableResourcesView.as_view(),
        name="neutron-loggable-resources",
    ),
]
