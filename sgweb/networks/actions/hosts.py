"""Registering and removing compute hosts; binding targets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from sgweb.audit.choices import AuditAction
from sgweb.audit.record import record
from sgweb.networks.models import (
    Host,
)
from sgweb.tenancy.access import require_admin
from sgweb.tenancy.errors import Conflict
from sgweb.tenancy.validators import Errors, clean_description, clean_name

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    Actor = User | AnonymousUser | None  # request.user, or None for the system


# --- hosts ---------------------------------------------------------------------------------


def create_host(
    actor: Actor,
    *,
    name: str,
    description: str = "",
    netns: str | None = None,
    network_node: bool = False,
) -> Host:
    require_admin(actor, "Registering a compute host")
    errors = Errors()
    clean = clean_name(errors, name)
    if not clean:
        errors.add("name", "A host needs a name.")
    desc = clean_description(errors, description)
    errors.raise_if_any()
    if Host.objects.filter(name=clean).exists():
        raise Conflict(f"Host {clean} already exists.", errors={"name": ["Name already taken."]})
    with transaction.atomic():
        host = Host.objects.create(
            name=clean, description=desc, netns=netns or None, network_node=bool(network_node)
        )
        record(actor, AuditAction.CREATE, "host", host.id, host.name, after=_host_dict(host))
    return host


def delete_host(actor: Actor, host: Host) -> None:
    """Remove the record of a host no port is bound to (refused otherwise).

    Only the lab's tear-down uses it, after it has stopped the host's agent and deleted its
    ports. The admin's way to remove a host (dashboard, `decommission_host`) is
    `sgweb.hostsync.actions.decommission_host`: it refuses while the agent still heartbeats,
    may unbind the ports, and also drops the host's pending publishes and its Redis keys.
    This one cannot call it (networks sits below hostsync) and stays the plain record removal:
    a tear-down must not wait for a stopped agent's heartbeat to age."""
    require_admin(actor, "Removing a compute host")
    with transaction.atomic():
        if host.ports.exists():
            raise Conflict(
                f"Host {host.name} still has ports bound to it.", neutron_type="HostInUse"
            )
        before = _host_dict(host)
        host_id, name = host.id, host.name
        host.delete()
        record(actor, AuditAction.DELETE, "host", host_id, name, before=before)


def _host_dict(host: Host) -> dict[str, Any]:
    return {
        "name": host.name,
        "description": host.description,
        "netns": host.netns,
        "network_node": host.network_node,
    }


def host_for_binding(name: str) -> Host:
    """Neutron's binding:host_id is free text; an unknown host is registered on first use."""
    host, _ = Host.objects.get_or_create(name=name)
    return host
