"""Writers of the host-sync app: decommissioning a compute host that is gone.

A host appears when a port is first bound to it (`binding:host_id`) and stays until an admin
decommissions it. Decommissioning refuses while the host's agent still heartbeats (it would
come back at its next report) and, unless forced, while ports are still bound there (forced:
they are unbound, audited). Then the host, its history and pending publishes go, and after
commit its keys and queue in Redis.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db import transaction

from sgweb.audit.choices import AuditAction
from sgweb.audit.record import record
from sgweb.hostsync.channel import channel
from sgweb.hostsync.models import PublishIntent
from sgweb.hostsync.status import host_liveness
from sgweb.networks.models import Host, Port
from sgweb.tenancy.access import require_admin
from sgweb.tenancy.errors import Conflict, NotFound
from sgweb.wire import sync as protocol

if TYPE_CHECKING:
    from sgweb.tenancy.access import AnyUser

log = logging.getLogger(__name__)


def host_record(host: Host) -> dict[str, Any]:
    """What the audit log keeps of a host."""
    return {
        "name": host.name,
        "status": host.status,
        "desired_revision": host.desired_revision,
        "applied_revision": host.applied_revision,
        "desired_digest": host.desired_digest,
        "applied_digest": host.applied_digest,
        "netns": host.netns,
    }


def get_host(actor: AnyUser, name: str) -> Host:
    require_admin(actor, "Managing compute hosts")
    host = Host.objects.filter(name=name).first()
    if host is None:
        raise NotFound(f"Host {name} could not be found.", neutron_type="HostNotFound")
    return host


def decommission_host(actor: AnyUser, name: str, *, force: bool = False) -> list[str]:
    """Remove a gone host; returns the ids of the ports that were unbound (force).

    The admin's removal. `sgweb.networks.actions.delete_host` is the lab tear-down's plain
    removal of an unbound host's record (no liveness check, no host-sync clean-up)."""
    host = get_host(actor, name)
    beat = host_liveness([name])[name]
    if beat.alive:
        raise Conflict(
            f"Host {name} still has a live agent (pid {beat.pid}); stop it first.",
            neutron_type="HostInUse",
        )
    with transaction.atomic():
        host = Host.objects.select_for_update().filter(pk=host.pk).first() or host
        bound = [str(pk) for pk in Port.objects.filter(host=host).values_list("id", flat=True)]
        if bound and not force:
            raise Conflict(
                f"Host {name} still has {len(bound)} bound port(s); unbind them first "
                "or decommission with force.",
                neutron_type="HostInUse",
            )
        before = {**host_record(host), "unbound_ports": bound}
        if bound:
            Port.objects.filter(host=host).update(host=None)
        PublishIntent.objects.filter(host_name=name).delete()
        host_id = host.pk
        host.delete()
        record(actor, AuditAction.DELETE, "host", host_id, name, before=before)
        transaction.on_commit(lambda: forget_in_redis(name))
    return bound


def forget_in_redis(name: str) -> None:
    """The host's keys and its agent's queue; what cannot be removed now expires or is unused."""
    via = channel()
    keys = via.keys(name)
    names = [
        keys.revision, keys.desired, keys.desired_revision, keys.desired_digest,
        keys.heartbeat, keys.applied, keys.applied_state, protocol.host_queue(name),
    ]  # fmt: skip
    try:
        via.redis.delete(*names)
    except Exception as exc:
        log.warning("could not remove host %r from Redis: %s", name, exc)
