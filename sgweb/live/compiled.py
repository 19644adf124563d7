"""Compiled, trace-ready hosts for the web side: port chains, group hits, static verdicts.

Compiling a 1000-port host takes a while; a page or a trace should cost a lookup. A host's
compiled state is kept until its fingerprint changes: its desired revision (bumped by every
change, see `sgweb.dispatch.hosts_changed`) plus a few aggregate counts and times of what its
state is built from, so that changes made without a publish (tests, a shell) are seen too.
"""

from __future__ import annotations

import threading

from django.db.models import Count, Max

from sgweb.firewall.traceflow import HostTarget, HostTargetCache
from sgweb.networks.models import Host, Port, PortSecurityGroup
from sgweb.security.models import SecurityGroup, SecurityGroupRule

_cache = HostTargetCache(limit=64)
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
    from sgweb.security.desired_state import host_state

    if isinstance(host, str):
        host = Host.objects.get(name=host)
    key = _fingerprint(host)
    with _lock:
        cached = _cached.get(host.name)
        if cached is not None and cached[0] == key:
            return cached[1]
    target = _cache.target(host.name, host_state(host), revision=key)
    with _lock:
        _cached[host.name] = (key, target)
    return target


_cached: dict[str, tuple[tuple[object, ...], HostTarget]] = {}


def forget(host_name: str | None = None) -> None:
    with _lock:
        if host_name is None:
            _cached.clear()
        else:
            _cached.pop(host_name, None)
    if host_name is not None:
        _cache.forget(host_name)
