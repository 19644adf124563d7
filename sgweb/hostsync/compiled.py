"""Compiled, trace-ready hosts for the web side: port chains, group hits, static verdicts.

Compiling a 1000-port host takes a while; a page or a trace should cost a lookup. A host's
compiled state is kept until its fingerprint changes: its desired revision (bumped by every
change, see `sgweb.hostsync.publish`) plus a few aggregate counts and times of what its
state is built from, so that changes made without a publish (tests, a shell) are seen too.
"""

from __future__ import annotations

import threading

from django.db.models import Count, Max

from sgweb.firewall.compiler import compile_host
from sgweb.firewall.trace.flow import HostTarget
from sgweb.firewall.trace.tracer import prepare
from sgweb.hostsync.desired_state import host_state
from sgweb.networks.models import Host, Port, PortSecurityGroup
from sgweb.security.models import SecurityGroup, SecurityGroupRule

LIMIT = 64  # hosts kept; the oldest compiled goes first
_cached: dict[str, tuple[tuple[object, ...], HostTarget]] = {}
_lock = threading.Lock()


def _fingerprint(host: Host) -> tuple[object, ...]:
    ports = Port.objects.filter(host=host).aggregate(
        n=Count("id"), changed=Max("updated_at"), ips=Count("fixed_ips")
    )
    links = PortSecurityGroup.objects.filter(port__host=host).aggregate(n=Count("id"))
    rules = SecurityGroupRule.objects.aggregate(n=Count("id"), changed=Max("updated_at"))
    groups = SecurityGroup.objects.aggregate(changed=Max("updated_at"))
    return (
        host.pk,
        host.desired_revision,
        ports["n"],
        ports["changed"],
        ports["ips"],
        links["n"],
        rules["n"],
        rules["changed"],
        groups["changed"],
    )


def host_target(host: Host | str) -> HostTarget:
    """The host's desired state, compiled and prepared for tracing (cached)."""

    if isinstance(host, str):
        host = Host.objects.get(name=host)
    key = _fingerprint(host)
    with _lock:
        cached = _cached.get(host.name)
    if cached is not None and cached[0] == key:
        return cached[1]
    state = host_state(host)
    compiled = compile_host(state)
    target = HostTarget(host.name, state, compiled, prepare(compiled))
    with _lock:
        _cached.pop(host.name, None)
        if len(_cached) >= LIMIT:
            _cached.pop(next(iter(_cached)))
        _cached[host.name] = (key, target)
    return target


def forget() -> None:
    """Drop every compiled host (tests that rebuild the database)."""
    with _lock:
        _cached.clear()
