"""`python -m bench.droplog_record [--ports 1000] [--batches 20] [--flows 500]`: what the control
worker spends on the drop log's batches.

A scratch database (SQLite, or DATABASE_URL if set) with one host of --ports ports in 5 groups
(10 ingress rules each), every port logged. Agents' batches of --flows flows are fed to
`sgweb.droplog.actions.record` as the Celery task would: first batches of flows never seen
(stored and explained by the tracer over the host's compiled state), then the same flows
again as they grow (merged: counts and times only). Prints JSON: the host's compile (once, as
the compiled-host cache keeps it), ms per batch and per flow (p50/p95), and flows per second
of one worker. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from typing import Any


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _summary(seconds: list[float], flows: int) -> dict[str, float]:
    return {
        "batch_p50_ms": round(statistics.median(seconds) * 1000, 1),
        "batch_p95_ms": round(_p95(seconds) * 1000, 1),
        "per_flow_p50_ms": round(statistics.median(seconds) * 1000 / flows, 3),
        "flows_per_s": round(flows / statistics.median(seconds)),
    }


def _seed(ports: int) -> tuple[Any, list[tuple[str, str]]]:
    from sgweb.networks.models import FixedIP, Host, Network, Port, PortSecurityGroup, Subnet
    from sgweb.packetlogs.models import Log
    from sgweb.security.models import SecurityGroup, SecurityGroupRule
    from sgweb.tenancy.models import Project, Quota

    project = Project.objects.create(name="bench")
    Quota.objects.create(project=project)
    groups = [SecurityGroup.objects.create(project=project, name=f"g{n}") for n in range(5)]
    SecurityGroupRule.objects.bulk_create(
        SecurityGroupRule(id=uuid.uuid4(), security_group=group, project=project,
                          direction="ingress", ethertype="IPv4", protocol="tcp",
                          port_range_min=1000 + i, port_range_max=1000 + i,
                          remote_ip_prefix="198.51.100.0/24")
        for group in groups for i in range(10)
    )  # fmt: skip
    host = Host.objects.create(name="bench-host")
    network = Network.objects.create(project=project, name="bench-net")
    subnet = Subnet.objects.create(
        network=network, project=project, ip_version=4, cidr="100.64.0.0/16",
        gateway_ip="100.64.0.1", dhcp_servers=["100.64.0.2"],
    )  # fmt: skip
    made = Port.objects.bulk_create(
        Port(id=uuid.uuid4(), project=project, network=network, name=f"vm-{n}", host=host,
             mac_address=f"fa:16:3e:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}",
             conntrack_zone=4097 + n)
        for n in range(ports)
    )  # fmt: skip
    addresses = [f"100.64.{(n + 10) // 250}.{(n + 10) % 250 + 1}" for n in range(ports)]
    FixedIP.objects.bulk_create(
        FixedIP(port=port, subnet=subnet, ip_address=address)
        for port, address in zip(made, addresses, strict=True)
    )
    PortSecurityGroup.objects.bulk_create(
        PortSecurityGroup(port=port, security_group=groups[n % 5]) for n, port in enumerate(made)
    )
    Log.objects.create(project=project, name="all")  # every port of the project, ALL events
    return host, [(str(port.pk), address) for port, address in zip(made, addresses, strict=True)]


def _batch(host: str, seq: int, ports: list[tuple[str, str]], flows: int, offset: int,
           count: int) -> dict[str, Any]:  # fmt: skip
    from sgweb.wire.packetlog import Flow, FlowBatch

    now = time.time()
    made = []
    for n in range(flows):
        port_id, address = ports[(offset + n * 7) % len(ports)]
        made.append(Flow(
            port_id=port_id, direction="ingress", event="DROP", ethertype="IPv4", protocol=6,
            src=f"203.0.113.{(offset + n) % 250 + 1}", dst=address, src_port=40000 + n % 20000,
            dst_port=1000 + n % 10, first_seen=now - 5, last_seen=now, count=count,
        ))  # fmt: skip
    return FlowBatch(host, seq, 1.0, now, tuple(made)).as_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--flows", type=int, default=500)
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="sgweb-bench-")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{scratch}/bench.sqlite3")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sgweb.settings")
    os.environ.setdefault("SECRET_KEY", "bench")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.SGWEB_PUBLISH_TO_HOSTS = False
    settings.SGWEB_LIVE_EVENTS = False
    call_command("migrate", verbosity=0)

    from sgweb.droplog import actions
    from sgweb.hostsync.compiled import host_target

    host, ports = _seed(args.ports)
    started = time.perf_counter()
    host_target(host.name)
    compile_s = time.perf_counter() - started
    new: list[float] = []
    grown: list[float] = []
    seq = 0
    for b in range(args.batches):
        seq += 1
        document = _batch(host.name, seq, ports, args.flows, b * args.flows, 3)
        started = time.perf_counter()
        actions.record(document)
        new.append(time.perf_counter() - started)
    for b in range(args.batches):
        seq += 1
        document = _batch(host.name, seq, ports, args.flows, b * args.flows, 9)
        started = time.perf_counter()
        actions.record(document)
        grown.append(time.perf_counter() - started)
    loadavg: list[str] = []
    if os.path.exists("/proc/loadavg"):
        with open("/proc/loadavg") as source:
            loadavg = source.read().split()[:3]
    result = {
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "ports": args.ports,
        "flows_per_batch": args.flows,
        "batches": args.batches,
        "host_compile_s": round(compile_s, 2),
        "new_flows": _summary(new, args.flows),
        "grown_flows": _summary(grown, args.flows),
        "loadavg": loadavg,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
