"""This app's Neutron routes (mounted at /networking by `sgweb.urls`)."""

from sgweb.api.urls import resource_routes
from sgweb.networks.api import serializers as docs
from sgweb.networks.api.resources import Networks, Ports, Subnets

urlpatterns = [
    *resource_routes(Networks(), docs.NETWORK_FIELDS, docs.NETWORK_WRITABLE),
    *resource_routes(Subnets(), docs.SUBNET_FIELDS, docs.SUBNET_WRITABLE),
    *resource_routes(Ports(), docs.PORT_FIELDS, docs.PORT_WRITABLE),
]
