"""Changing routers and their interfaces: permission, validation, DB + audit, dispatch.

A router runs on one network node (scheduled at creation: the node with the fewest
routers); every change of a router or of its interfaces tells that node on commit
(`dispatch.network_nodes_changed`). Refusals raise the `ActionError` family and change nothing.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count

from sgweb import dispatch
from sgweb.audit.choices import AuditAction
from sgweb.audit.record import record
from sgweb.networks.addressing import unused_mac
from sgweb.networks.models import FixedIP, Host, Port, Subnet
from sgweb.routers import hooks
from sgweb.routers.choices import ROUTER_INTERFACE
from sgweb.routers.models import Router, RouterInterface
from sgweb.routers.representation import interface_to_dict, router_to_dict
from sgweb.tenancy.access import is_admin, require_admin, require_change
from sgweb.tenancy.errors import Conflict, Invalid, NotFound, OverQuota
from sgweb.tenancy.models import Project
from sgweb.tenancy.standard import changed_fields
from sgweb.tenancy.validators import (
    CANNOT_CHANGE,
    Errors,
    clean_bool,
    clean_description,
    clean_name,
    clean_name_and_description,
    refuse_fields,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    Actor = User | AnonymousUser | None

UPDATABLE = ("name", "description", "admin_state_up")


def _not_found(router_id: object) -> str:
    return f"Router {router_id} could not be found"


def _require_router(actor: Actor, router: Router) -> None:
    require_change(
        actor, router.project_id, not_found=_not_found(router.id), neutron_type="RouterNotFound"
    )


def _repr(router: Router) -> str:
    return router.name or str(router.id)


def _host_name(router: Router) -> str | None:
    return router.host.name if router.host_id and router.host else None


def schedule(router: Router | None = None) -> Host | None:
    """The network node with the fewest routers (by name on a tie); None when there is none."""
    nodes = Host.objects.filter(network_node=True).annotate(load=Count("routers"))
    return nodes.order_by("load", "name").first()


def create_router(
    actor: Actor,
    project: Project,
    *,
    name: str = "",
    description: str = "",
    admin_state_up: bool = True,
    host: Host | None = None,
) -> Router:
    """`host`: admins may place the router on a given network node (else it is scheduled)."""
    require_change(actor, project.id, not_found=f"Project {project.id} could not be found.")
    errors = Errors()
    values = {
        "name": clean_name(errors, name),
        "description": clean_description(errors, description),
        "admin_state_up": clean_bool(errors, "admin_state_up", admin_state_up),
    }
    if host is not None and not host.network_node:
        errors.add("host", f"Host {host.name} is not a network node.")
    errors.raise_if_any()
    if host is not None:
        require_admin(actor, "Placing a router on a host")
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        limit = settings.QUOTA_ROUTERS
        if 0 <= limit <= Router.objects.filter(project=project).count():
            raise OverQuota(
                "Quota exceeded for resources: ['router'].",
                errors={"__all__": [f"The project may have {limit} routers."]},
            )
        router = Router.objects.create(project=project, host=host or schedule(), **values)
        record(
            actor,
            AuditAction.CREATE,
            "router",
            router.id,
            _repr(router),
            project_id=project.id,
            after=router_to_dict(router),
        )
        dispatch.network_nodes_changed(f"router {router.id} created", hosts=[_host_name(router)])
    return router


def update_router(actor: Actor, router: Router, **changes: Any) -> Router:
    _require_router(actor, router)
    refuse_fields(changes, UPDATABLE, CANNOT_CHANGE)
    errors = Errors()
    values: dict[str, Any] = clean_name_and_description(errors, changes)
    if "admin_state_up" in changes:
        values["admin_state_up"] = clean_bool(errors, "admin_state_up", changes["admin_state_up"])
    errors.raise_if_any()
    with transaction.atomic():
        locked = (
            Router.objects.select_for_update(of=("self",)).select_related("host").get(pk=router.pk)
        )
        before = router_to_dict(locked)
        changed = changed_fields(locked, values)
        if not changed:
            return locked
        locked.save_changes(changed)
        record(
            actor,
            AuditAction.UPDATE,
            "router",
            locked.id,
            _repr(locked),
            project_id=locked.project_id,
            before=before,
            after=router_to_dict(locked),
        )
        if "admin_state_up" in changed:
            dispatch.network_nodes_changed(
                f"router {locked.id} admin_state_up={locked.admin_state_up}",
                hosts=[_host_name(locked)],
            )
    return locked


def delete_router(actor: Actor, router: Router) -> None:
    _require_router(actor, router)
    with transaction.atomic():
        locked = (
            Router.objects.select_for_update(of=("self",)).select_related("host").get(pk=router.pk)
        )
        interfaces = locked.interfaces.count()
        if interfaces:
            raise Conflict(
                f"Router {locked.id} still has ports",
                neutron_type="RouterInUse",
                errors={"__all__": [f"Remove its {interfaces} interface(s) first."]},
            )
        before = router_to_dict(locked)
        router_id, project_id, repr_, host = locked.id, locked.project_id, _repr(locked), None
        host = _host_name(locked)
        locked.delete()
        record(
            actor,
            AuditAction.DELETE,
            "router",
            router_id,
            repr_,
            project_id=project_id,
            before=before,
        )
        dispatch.network_nodes_changed(f"router {router_id} deleted", hosts=[host])


def _bad_router_request(router: Router, why: str, field: str = "subnet_id") -> Invalid:
    return Invalid(
        f"Bad router request: {why}.", neutron_type="BadRequest", errors={field: [why + "."]}
    )


def add_interface(actor: Actor, router: Router, subnet: Subnet) -> RouterInterface:
    """A port on `subnet` holding its gateway address, owned by the router (Neutron's
    add_router_interface with a subnet_id)."""
    _require_router(actor, router)
    if subnet.project_id != router.project_id and not subnet.network.shared and not is_admin(actor):
        raise NotFound(f"Subnet {subnet.id} could not be found.", neutron_type="SubnetNotFound")
    if not subnet.gateway_ip:
        raise _bad_router_request(router, "Subnet for router interface must have a gateway IP")
    with transaction.atomic():
        locked = (
            Router.objects.select_for_update(of=("self",)).select_related("host").get(pk=router.pk)
        )
        new_net = ipaddress.ip_network(subnet.cidr)
        for other in Subnet.objects.filter(router_interfaces__router=locked):
            if other.pk == subnet.pk:
                raise _bad_router_request(
                    locked, f"Router already has a port on subnet {subnet.id}"
                )
            if ipaddress.ip_network(other.cidr).overlaps(new_net):
                raise _bad_router_request(
                    locked,
                    f"Cidr {subnet.cidr} of subnet {subnet.id} overlaps with cidr {other.cidr} "
                    f"of subnet {other.id}",
                )
        if FixedIP.objects.filter(subnet=subnet, ip_address=subnet.gateway_ip).exists():
            raise Conflict(
                f"IP address {subnet.gateway_ip} already allocated in subnet {subnet.id}",
                neutron_type="IpAddressAlreadyAllocated",
                errors={"subnet_id": [f"The gateway {subnet.gateway_ip} is already in use."]},
            )
        port = Port.objects.create(
            project_id=locked.project_id,
            network_id=subnet.network_id,
            mac_address=unused_mac(subnet.network_id),
            device_owner=ROUTER_INTERFACE,
            device_id=str(locked.id),
            # The router's own address: no security groups filter it (FWaaS does).
            port_security_enabled=False,
        )
        FixedIP.objects.create(port=port, subnet=subnet, ip_address=subnet.gateway_ip)
        interface = RouterInterface.objects.create(router=locked, port=port, subnet=subnet)
        locked.bump_revision()
        locked.save(update_fields=["revision_number", "updated_at"])
        record(
            actor,
            AuditAction.UPDATE,
            "router",
            locked.id,
            _repr(locked),
            project_id=locked.project_id,
            after={"add_router_interface": interface_to_dict(interface)},
        )
        dispatch.network_nodes_changed(
            f"router {locked.id} interface added on subnet {subnet.id}",
            hosts=[_host_name(locked)],
        )
    return interface


def remove_interface(
    actor: Actor, router: Router, *, subnet: Subnet | None = None, port: Port | None = None
) -> dict[str, Any]:
    """Remove the router's interface on `subnet` (or the interface `port`); its port goes."""
    _require_router(actor, router)
    if subnet is None and port is None:
        raise Invalid(
            "Bad router request: Either subnet_id or port_id must be specified.",
            neutron_type="BadRequest",
        )
    with transaction.atomic():
        locked = (
            Router.objects.select_for_update(of=("self",)).select_related("host").get(pk=router.pk)
        )
        interfaces = RouterInterface.objects.filter(router=locked).select_related(
            "router", "subnet", "port"
        )
        if port is not None:
            interfaces = interfaces.filter(port=port)
        if subnet is not None:
            interfaces = interfaces.filter(subnet=subnet)
        interface = interfaces.first()
        if interface is None:
            if port is not None:
                raise NotFound(
                    f"Router {locked.id} does not have an interface with id {port.id}",
                    neutron_type="RouterInterfaceNotFound",
                )
            assert subnet is not None
            raise NotFound(
                f"Router {locked.id} has no interface on subnet {subnet.id}",
                neutron_type="RouterInterfaceNotFoundForSubnet",
            )
        for in_use in hooks.interface_in_use:
            why = in_use(interface.port)
            if why:
                raise Conflict(why, neutron_type="RouterInterfaceInUseByFirewallGroup")
        answer = interface_to_dict(interface)
        interface.delete()
        interface.port.delete()  # its fixed IP goes with it
        locked.bump_revision()
        locked.save(update_fields=["revision_number", "updated_at"])
        record(
            actor,
            AuditAction.UPDATE,
            "router",
            locked.id,
            _repr(locked),
            project_id=locked.project_id,
            before={"remove_router_interface": answer},
        )
        dispatch.network_nodes_changed(
            f"router {locked.id} interface removed from subnet {answer['subnet_id']}",
            hosts=[_host_name(locked)],
        )
    return answer
