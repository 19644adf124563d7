"""`python -m bench.bulk`: one bulk API create of N rules, published once vs once per rule.

A throwaway test database; a group used by ports on `--hosts` hosts; publishing and live events
on, to a key space of their own in the real Redis (`REDIS_URL`, removed afterwards; the live
events go through the real Channels layer). Each size is timed three times from the same data:
as shipped (the request's changes publish each host once and send one live `changes` event per
project, after commit), with one live `change` event per rule (`dispatch.coalesce_changes`
switched off, as before), and as before issue 10 (`dispatch.publish_once` switched off too: one
publish per rule). Prints the request time, the host publishes and the channel-layer sends of
each, with the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

from bench.djangosetup import setup

setup()

from channels.layers import channel_layers, get_channel_layer  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import override_settings, setup_databases, teardown_databases  # noqa: E402

from sgweb import dispatch  # noqa: E402
from sgweb.hostsync import fanout  # noqa: E402
from sgweb.hostsync.channel import SyncChannel, use_channel  # noqa: E402
from sgweb.networks.actions import create_network, create_port, create_subnet  # noqa: E402
from sgweb.security.actions import create_security_group  # noqa: E402
from sgweb.security.models import SecurityGroupRule  # noqa: E402
from sgweb.tenancy.actions import create_api_token  # noqa: E402
from sgweb.tenancy.choices import Role  # noqa: E402
from sgweb.tenancy.models import Profile, Project, Quota  # noqa: E402


@contextlib.contextmanager
def _events_per_rule() -> Iterator[None]:
    """The live events as before: one `change` per rule."""
    original = dispatch.coalesce_changes
    dispatch.coalesce_changes = contextlib.nullcontext  # type: ignore[assignment]
    try:
        yield
    finally:
        dispatch.coalesce_changes = original


@contextlib.contextmanager
def _once_per_rule() -> Iterator[None]:
    """The behaviour before issue 10: every rule's change published (and sent) on its own."""
    original = dispatch.publish_once
    dispatch.publish_once = contextlib.nullcontext  # type: ignore[assignment]
    try:
        with _events_per_rule():
            yield
    finally:
        dispatch.publish_once = original


def _count_sends(counts: dict[str, int]) -> None:
    """Count the channel-layer sends of the live events (each still goes to Redis)."""
    layer = get_channel_layer()
    real = layer.group_send

    async def counting(group: str, message: dict[str, Any]) -> None:
        counts["sends"] += 1
        await real(group, message)

    layer.group_send = counting


def _setup(hosts: int) -> tuple[Client, str, str]:
    admin = User.objects.create_user("bench-admin")
    Profile.objects.create(user=admin, role=Role.ADMIN)
    project = Project.objects.create(name="bench")
    Quota.objects.create(project=project, security_groups=-1, security_group_rules=-1)
    group = create_security_group(admin, project, name="bulk")
    network = create_network(admin, project, name="net")
    create_subnet(admin, network, cidr="198.51.100.0/24", name="v4")
    for index in range(hosts):
        create_port(admin, project, network, security_groups=[str(group.id)],
                    host=f"bench-{index}")  # fmt: skip
    _, key = create_api_token(admin, name="bench")
    return Client(), key, str(group.id)


def _post(client: Client, key: str, group_id: str, first_port: int, count: int) -> float:
    bodies = [
        {"security_group_id": group_id, "direction": "ingress", "protocol": "tcp",
         "port_range_min": port, "port_range_max": port}
        for port in range(first_port, first_port + count)
    ]  # fmt: skip
    started = time.perf_counter()
    response = client.post(
        "/networking/v2.0/security-group-rules",
        json.dumps({"security_group_rules": bodies}),
        content_type="application/json",
        HTTP_X_AUTH_TOKEN=key,
    )
    took = time.perf_counter() - started
    if response.status_code != 201:
        raise RuntimeError(f"bulk create: {response.status_code} {response.content[:300]!r}")
    return took


def run(sizes: list[int], hosts: int) -> dict[str, Any]:
    client, key, group_id = _setup(hosts)
    publishes = {"count": 0}
    real = fanout.publish_many

    def counting(names: Any, *args: Any, **kwargs: Any) -> Any:
        publishes["count"] += len(names)  # hosts published (every publish goes through here)
        return real(names, *args, **kwargs)

    fanout.publish_many = counting  # type: ignore[assignment]
    sends = {"sends": 0}
    _count_sends(sends)
    report: dict[str, Any] = {"hosts": hosts}
    port = 1
    for size in sizes:
        for label, mode in (
            ("once_per_request", contextlib.nullcontext),
            ("events_per_rule", _events_per_rule),
            ("per_rule", _once_per_rule),
        ):
            SecurityGroupRule.objects.filter(security_group_id=group_id).delete()
            publishes["count"] = sends["sends"] = 0
            with mode():
                took = _post(client, key, group_id, port, size)
            port += size
            report[f"{size}_rules_{label}_s"] = round(took, 3)
            report[f"{size}_rules_{label}_publishes"] = publishes["count"]
            report[f"{size}_rules_{label}_sends"] = sends["sends"]
            report[f"{size}_rules_{label}_load"] = [round(x, 1) for x in os.getloadavg()]
    fanout.publish_many = real  # type: ignore[assignment]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bulk", description=__doc__)
    parser.add_argument("--sizes", default="100,600")
    parser.add_argument("--hosts", type=int, default=2)
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    prefix = f"sgwt-bench-{secrets.token_hex(3)}"
    sync = SyncChannel(settings.REDIS_URL, settings.CELERY_BROKER_URL, prefix, f"control-{prefix}")
    layers = {"default": {**settings.CHANNEL_LAYERS["default"]}}
    layers["default"]["CONFIG"] = {**layers["default"]["CONFIG"], "prefix": prefix}
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        with (
            override_settings(
                SGWEB_PUBLISH_TO_HOSTS=True, SGWEB_LIVE_EVENTS=True, CHANNEL_LAYERS=layers
            ),
            use_channel(sync),
        ):
            channel_layers.backends.clear()
            report = run(sizes, args.hosts)
            for key in sync.redis.scan_iter(f"*{prefix}*"):
                sync.redis.delete(key)
    finally:
        teardown_databases(old_config, verbosity=0)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
