"""This app's Neutron routes (mounted at /networking by `sgweb.urls`)."""

from django.urls import re_path

from sgweb.api.urls import ID, JSON, resource_routes
from sgweb.routers.api import serializers as docs
from sgweb.routers.api.resources import AddInterfaceView, RemoveInterfaceView, Routers

urlpatterns = [
    re_path(
        rf"^/v2\.0/routers/{ID}/add_router_interface{JSON}$",
        AddInterfaceView.as_view(),
        name="neutron-router-add-interface",
    ),
    re_path(
        rf"^/v2\.0/routers/{ID}/remove_router_interface{JSON}$",
        RemoveInterfaceView.as_view(),
        name="neutron-router-remove-interface",
    ),
    *resource_routes(Routers(), docs.ROUTER_FIELDS, docs.ROUTER_WRITABLE),
]
