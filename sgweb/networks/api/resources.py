"""Networks, subnets and ports in the Neutron API."""

from __future__ import annotations

from typing import Any

from django.db.models import F, Q, QuerySet
from rest_framework.request import Request

from sgweb.api.query import (
    Filter,
    NoMatch,
    as_bool,
    as_int,
    as_nullable_text,
    as_uuid,
    constant,
    driver_rows,
    nothing,
)
from sgweb.api.resource import (
    PROJECT_FILTERS,
    STANDARD_SORTS,
    Resource,
    project_for_create,
    required_field,
)
from sgweb.networks import actions
from sgweb.networks.choices import AGENT_SILENT, PortStatus
from sgweb.networks.models import FixedIP, Network, Port, PortSecurityGroup, Subnet
from sgweb.networks.representation import (
    PORT_COLUMNS,
    network_to_dict,
    port_rows_to_dicts,
    ports_to_dicts,
    subnet_to_dict,
)
from sgweb.tenancy.access import can_change_project
from sgweb.tenancy.errors import Invalid

# Every resource here has an id and a name to filter on besides the project's filters.
NAMED_FILTERS = {
    **PROJECT_FILTERS,
    "id": Filter("id", as_uuid),
    "name": Filter("name"),
}


def _fixed_ips_filter(values: list[str]) -> Q:
    """Neutron's `fixed_ips=ip_address=192.0.2.5` / `fixed_ips=subnet_id=<id>` syntax."""
    condition = Q()
    for value in values:
        key, _, wanted = value.partition("=")
        if key == "ip_address":
            matching = FixedIP.objects.filter(ip_address=wanted)
        elif key == "ip_address_substr":
            matching = FixedIP.objects.filter(ip_address__contains=wanted)
        elif key == "subnet_id":
            try:
                matching = FixedIP.objects.filter(subnet_id=as_uuid(wanted))
            except NoMatch:
                return Q(pk__in=[])
        else:
            raise Invalid(f"Invalid input for operation: unknown fixed_ips filter {key}.")
        condition &= Q(pk__in=matching.values("port_id"))
    return condition


def _groups_filter(values: list[str]) -> Q:
    ids = []
    for value in values:
        try:
            ids.append(as_uuid(value))
        except NoMatch:
            continue
    links = PortSecurityGroup.objects.filter(security_group_id__in=ids)
    return Q(pk__in=links.values("port_id"))


def _network_status(values: list[str]) -> Q:
    wanted = set(values)
    return Q(admin_state_up__in=[status == "ACTIVE" for status in wanted & {"ACTIVE", "DOWN"}])


def _with_subnets(values: list[str]) -> Q:
    ids = []
    for value in values:
        try:
            ids.append(as_uuid(value))
        except NoMatch:
            continue
    return Q(pk__in=Subnet.objects.filter(id__in=ids).values("network_id"))


def _port_status(values: list[str]) -> Q:
    """The SQL twin of `Port.status`."""
    active = (
        Q(admin_state_up=True, host__isnull=False, host_revision__isnull=False)
        & Q(host__applied_revision__gte=F("host_revision"))
        & ~Q(host__status__in=AGENT_SILENT)
    )
    wanted = set(values) & {PortStatus.ACTIVE, PortStatus.DOWN}
    if wanted == {PortStatus.ACTIVE}:
        return active
    if wanted == {PortStatus.DOWN}:
        return ~active
    return Q() if wanted else Q(pk__in=[])


class Networks(Resource[Network]):
    singular = "network"
    plural = "networks"
    path = "networks"
    not_found_type = "NetworkNotFound"
    not_found_message = "Network {id} could not be found."
    filters = {
        **NAMED_FILTERS,
        "admin_state_up": Filter("admin_state_up", as_bool),
        "shared": Filter("shared", as_bool),
        # A network is ACTIVE exactly when it is administratively up.
        "status": Filter("", build=_network_status),
        "subnets": Filter("", build=_with_subnets),
        "mtu": constant(1500, as_int),
        "port_security_enabled": constant(True, as_bool),
        "router:external": constant(False, as_bool),
        "is_default": constant(False, as_bool),
    }
    sortable = STANDARD_SORTS
    tag_model = Network
    create_fields = {
        "name": "name",
        "description": "description",
        "admin_state_up": "admin_state_up",
        "shared": "shared",
    }
    read_only = Resource.read_only | {
        "status",
        "subnets",
        "mtu",
        "port_security_enabled",
        "router:external",
        "availability_zones",
        "availability_zone_hints",
        "ipv4_address_scope",
        "ipv6_address_scope",
        "is_default",
    }

    def queryset(self, request: Request) -> QuerySet[Network]:
        networks = self.scoped_or_shared(request, Network.objects.all(), Q(shared=True))
        return networks.prefetch_related("subnets")

    def to_dict(self, obj: Network) -> dict[str, Any]:
        return network_to_dict(obj)

    def create(self, request: Request, body: dict[str, Any]) -> Network:
        project = project_for_create(request, body)
        return actions.create_network(
            request.user, project, **self.map_fields(body, self.create_fields)
        )

    def update(self, request: Request, obj: Network, body: dict[str, Any]) -> Network:
        values = self.map_fields(body, self.create_fields, current=self.present([obj])[0])
        return actions.update_network(request.user, obj, **values)

    def delete(self, request: Request, obj: Network) -> None:
        actions.delete_network(request.user, obj)


class Subnets(Resource[Subnet]):
    singular = "subnet"
    plural = "subnets"
    path = "subnets"
    not_found_type = "SubnetNotFound"
    not_found_message = "Subnet {id} could not be found."
    filters = {
        **NAMED_FILTERS,
        "network_id": Filter("network_id", as_uuid),
        "ip_version": Filter("ip_version", as_int),
        "cidr": Filter("cidr"),
        "gateway_ip": Filter("gateway_ip"),
        "enable_dhcp": Filter("enable_dhcp", as_bool),
        "subnetpool_id": constant(None, as_nullable_text),
        "ipv6_ra_mode": constant(None, as_nullable_text),
        "ipv6_address_mode": constant(None, as_nullable_text),
        "service_types": Filter("", build=nothing),
    }
    sortable = {**STANDARD_SORTS, "cidr": "cidr", "ip_version": "ip_version"}
    tag_model = Subnet
    create_fields = {
        "name": "name",
        "description": "description",
        "cidr": "cidr",
        "ip_version": "ip_version",
        "gateway_ip": "gateway_ip",
        "enable_dhcp": "enable_dhcp",
        "dhcp_servers": "dhcp_servers",
        "allocation_pools": "allocation_pools",
    }
    update_fields = {
        "name": "name",
        "description": "description",
        "gateway_ip": "gateway_ip",
        "enable_dhcp": "enable_dhcp",
        "dhcp_servers": "dhcp_servers",
    }
    read_only = Resource.read_only | {
        "network_id",
        "dns_nameservers",
        "host_routes",
        "ipv6_ra_mode",
        "ipv6_address_mode",
        "subnetpool_id",
        "service_types",
        "cidr",
        "ip_version",
        "allocation_pools",
    }

    def queryset(self, request: Request) -> QuerySet[Subnet]:
        return self.scoped_or_shared(request, Subnet.objects.all(), Q(network__shared=True))

    def to_dict(self, obj: Subnet) -> dict[str, Any]:
        return subnet_to_dict(obj)

    def create(self, request: Request, body: dict[str, Any]) -> Subnet:
        network = _network_for(request, body)
        fields = {
            k: v for k, v in body.items() if k not in ("network_id", "tenant_id", "project_id")
        }
        values = self.map_fields(fields, self.create_fields)
        if "cidr" not in values:
            raise required_field("cidr")
        return actions.create_subnet(request.user, network, **values)

    def update(self, request: Request, obj: Subnet, body: dict[str, Any]) -> Subnet:
        values = self.map_fields(body, self.update_fields, current=self.present([obj])[0])
        return actions.update_subnet(request.user, obj, **values)

    def delete(self, request: Request, obj: Subnet) -> None:
        actions.delete_subnet(request.user, obj)


def _network_for(request: Request, body: dict[str, Any]) -> Network:
    network_id = body.get("network_id")
    if not network_id:
        raise required_field("network_id")
    return Networks().get_object(request, str(network_id))


class Ports(Resource[Port]):
    singular = "port"
    plural = "ports"
    path = "ports"
    not_found_type = "PortNotFound"
    not_found_message = "Port {id} could not be found."
    filters = {
        **NAMED_FILTERS,
        "network_id": Filter("network_id", as_uuid),
        "mac_address": Filter("mac_address"),
        "device_id": Filter("device_id"),
        "device_owner": Filter("device_owner"),
        "admin_state_up": Filter("admin_state_up", as_bool),
        "port_security_enabled": Filter("port_security_enabled", as_bool),
        "binding:host_id": Filter("host__name"),
        "security_groups": Filter("", build=_groups_filter),
        "fixed_ips": Filter("", build=_fixed_ips_filter),
        "status": Filter("", build=_port_status),
        "binding:vnic_type": constant("normal"),
    }
    sortable = {**STANDARD_SORTS, "mac_address": "mac_address", "network_id": "network_id"}
    tag_model = Port
    create_fields = {
        "name": "name",
        "description": "description",
        "mac_address": "mac_address",
        "fixed_ips": "fixed_ips",
        "security_groups": "security_groups",
        "port_security_enabled": "port_security_enabled",
        "allowed_address_pairs": "allowed_address_pairs",
        "binding:host_id": "host",
        "device_owner": "device_owner",
        "device_id": "device_id",
        "admin_state_up": "admin_state_up",
    }
    update_fields = {key: value for key, value in create_fields.items() if key != "mac_address"}
    read_only = Resource.read_only | {
        "network_id",
        "mac_address",
        "status",
        "device",
        "binding:vif_type",
        "binding:vif_details",
        "binding:vnic_type",
        "binding:profile",
        "extra_dhcp_opts",
    }

    def queryset(self, request: Request) -> QuerySet[Port]:
        return self.scoped(request, Port.objects.all()).select_related("host")

    list_columns = PORT_COLUMNS

    def fetch_rows(self, queryset: QuerySet[Any]) -> list[Any]:
        return driver_rows(queryset)

    def to_dicts(self, objs: list[Port]) -> list[dict[str, Any]]:
        return ports_to_dicts(objs)

    def rows_to_dicts(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return port_rows_to_dicts(rows)

    def create(self, request: Request, body: dict[str, Any]) -> Port:
        network = _network_for(request, body)
        if body.get("project_id") or body.get("tenant_id"):
            project = project_for_create(request, body)
        elif can_change_project(request.user, network.project_id):
            project = network.project
        else:
            project = project_for_create(request, body)
        fields = {
            k: v for k, v in body.items() if k not in ("network_id", "tenant_id", "project_id")
        }
        # Neutron's defaults a client may spell out.
        for key, neutral in (("binding:vnic_type", "normal"), ("binding:profile", {})):
            if fields.get(key) in (neutral, None):
                fields.pop(key, None)
        values = self.map_fields(fields, self.create_fields)
        return actions.create_port(request.user, project, network, **values)

    def update(self, request: Request, obj: Port, body: dict[str, Any]) -> Port:
        values = self.map_fields(body, self.update_fields, current=self.present([obj])[0])
        return actions.update_port(request.user, obj, **values)

    def delete(self, request: Request, obj: Port) -> None:
        actions.delete_port(request.user, obj)
