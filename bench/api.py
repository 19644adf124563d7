"""`python -m bench.api`: API page latency with 10,000 rules and 5,000 ports.

Loads the data with bulk_create into a throwaway test database, then times each target with
Django's test client (the whole request/response cycle, no network) and prints JSON:
p50/p95/max in milliseconds and the number of queries per request. (The dashboard's pages
have their own benchmark, `python -m bench.pages`.)
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import statistics
import time
from typing import Any

from bench.djangosetup import setup

setup()

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection, reset_queries  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402

from sgweb.gctune import tune_for_serving  # noqa: E402
from sgweb.networks.models import FixedIP, Host, Network, Port, PortSecurityGroup, Subnet  # noqa: E402
from sgweb.security.models import SecurityGroup, SecurityGroupRule  # noqa: E402
from sgweb.tenancy.actions import create_api_token  # noqa: E402
from sgweb.tenancy.choices import Role  # noqa: E402
from sgweb.tenancy.models import Membership, Profile, Project, Quota  # noqa: E402

BENCH_PASSWORD = "bench-password"


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def load(rules: int, ports: int, groups: int, hosts: int) -> dict[str, Any]:
    """Bulk-load a project with `groups` groups sharing `rules` rules and `ports` ports."""
    project = Project.objects.create(name="bench")
    Quota.objects.create(project=project, security_groups=-1, security_group_rules=-1)
    other = Project.objects.create(name="bench-other")
    Quota.objects.create(project=other)
    member = User.objects.create_user("bench-member", password=BENCH_PASSWORD)
    Profile.objects.create(user=member, role=Role.MEMBER)
    Membership.objects.create(user=member, project=project)
    admin = User.objects.create_user("bench-admin", password=BENCH_PASSWORD)
    Profile.objects.create(user=admin, role=Role.ADMIN)

    host_rows = Host.objects.bulk_create(Host(name=f"compute{i}") for i in range(hosts))
    group_rows = SecurityGroup.objects.bulk_create(
        SecurityGroup(project=project, name=f"group-{i:04d}", description="bench")
        for i in range(groups)
    )
    rule_rows = []
    for index in range(rules):
        group = group_rows[index % groups]
        if index % 5 == 4:
            remote = group_rows[(index * 7) % groups]
            rule_rows.append(
                SecurityGroupRule(
                    security_group=group, project=project, direction="ingress",
                    ethertype="IPv4", protocol="tcp", port_range_min=5432,
                    port_range_max=5432 + index // groups, remote_group=remote,
                )
            )  # fmt: skip
        else:
            port = 1 + index // groups
            prefix = f"198.51.100.{index % 256}/32"
            rule_rows.append(
                SecurityGroupRule(
                    security_group=group, project=project, direction="ingress",
                    ethertype="IPv4", protocol="tcp", port_range_min=port, port_range_max=port,
                    remote_ip_prefix=prefix, normalized_cidr=prefix,
                )
            )  # fmt: skip
    SecurityGroupRule.objects.bulk_create(rule_rows, batch_size=2000)

    network = Network.objects.create(project=project, name="bench-net")
    cidr = ipaddress.ip_network("100.64.0.0/16")
    subnet = Subnet.objects.create(
        network=network, project=project, name="bench-v4", ip_version=4, cidr=str(cidr),
        gateway_ip="100.64.0.1", dhcp_servers=["100.64.0.2"],
    )  # fmt: skip
    port_rows = Port.objects.bulk_create(
        (
            Port(
                project=project,
                network=network,
                name=f"port-{i:05d}",
                mac_address=f"fa:16:3e:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                host=host_rows[i % hosts],
            )
            for i in range(ports)
        ),
        batch_size=2000,
    )
    FixedIP.objects.bulk_create(
        (
            FixedIP(port=port, subnet=subnet, ip_address=str(cidr.network_address + 10 + i))
            for i, port in enumerate(port_rows)
        ),
        batch_size=2000,
    )
    PortSecurityGroup.objects.bulk_create(
        (
            PortSecurityGroup(port=port, security_group=group_rows[i % groups], position=0)
            for i, port in enumerate(port_rows)
        ),
        batch_size=2000,
    )
    _, member_key = create_api_token(member, name="bench")
    _, admin_key = create_api_token(admin, name="bench")
    return {
        "project_id": project.id.hex,
        "group_id": str(group_rows[groups // 2].id),
        "rule_id": str(rule_rows[rules // 2].id),
        "port_id": str(port_rows[ports // 2].id),
        "network_id": str(network.id),
        "host": host_rows[0].name,
        "member_key": member_key,
        "admin_key": admin_key,
        "member_username": member.username,
        "admin_username": admin.username,
        "password": BENCH_PASSWORD,
    }


def api_targets(ctx: dict[str, Any]) -> list[tuple[str, str]]:
    base = "/networking/v2.0"
    return [
        ("api security-groups (default page)", f"{base}/security-groups"),
        ("api security-group-rules (default page)", f"{base}/security-group-rules"),
        ("api ports (default page)", f"{base}/ports"),
        (
            "api security-group-rules?security_group_id=",
            f"{base}/security-group-rules?security_group_id={ctx['group_id']}",
        ),
        ("api ports?security_groups=", f"{base}/ports?security_groups={ctx['group_id']}"),
        ("api ports?binding:host_id=", f"{base}/ports?binding:host_id={ctx['host']}"),
        ("api ports?limit=100&sort_key=name", f"{base}/ports?limit=100&sort_key=name"),
        ("api security-groups/<id>", f"{base}/security-groups/{ctx['group_id']}"),
        ("api security-group-rules/<id>", f"{base}/security-group-rules/{ctx['rule_id']}"),
        ("api ports/<id>", f"{base}/ports/{ctx['port_id']}"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--ports", type=int, default=5_000)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--as", dest="persona", choices=("member", "admin"), default="member")
    options = vars(parser.parse_args(argv))
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        report = run(options)
    finally:
        teardown_databases(old_config, verbosity=0)
    print(json.dumps(report, indent=2))
    return 0


def run(options: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    ctx = load(options["rules"], options["ports"], options["groups"], options["hosts"])
    load_seconds = time.perf_counter() - started
    tune_for_serving()  # as sgweb.asgi does in the server process
    key = ctx[f"{options['persona']}_key"]
    api_client = Client(HTTP_X_AUTH_TOKEN=key)
    results = [measure(api_client, name, url, options["repeat"]) for name, url in api_targets(ctx)]
    return {
        "database": connection.vendor,
        "persona": options["persona"],
        "rules": options["rules"],
        "ports": options["ports"],
        "groups": options["groups"],
        "load_seconds": round(load_seconds, 2),
        "target_p95_ms": 150,
        "results": results,
    }


def measure(client: Client, name: str, url: str, repeat: int) -> dict[str, Any]:
    from django.conf import settings

    client.get(url)  # warm caches and the connection
    samples = []
    status = None
    size = 0
    queries = 0
    debug = settings.DEBUG
    for _ in range(repeat):
        reset_queries()
        settings.DEBUG = True  # count queries
        began = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - began) * 1000)
        settings.DEBUG = debug
        queries = len(connection.queries)
        status = response.status_code
        size = len(response.content)
    return {
        "name": name,
        "url": url,
        "status": status,
        "bytes": size,
        "queries": queries,
        "p50_ms": round(statistics.median(samples), 1),
        "p95_ms": round(_percentile(samples, 0.95), 1),
        "max_ms": round(max(samples), 1),
    }


if __name__ == "__main__":
    raise SystemExit(main())
