"""`python -m bench.accounting_pages`: the kept accounting's pages, API and storage.

A scratch database (SQLite, or DATABASE_URL if set, e.g. a PostgreSQL made for it) with one
group of 100 rules, every rule hit in every bucket (10 s for 2 hours, 1 min for a day, 1 h for
30 days: the worst case for the windows read), then:

* the group page with its 100 sparklines (last hour), p50/p95 over --repeat requests;
* one rule's 30-day series from the API (hourly steps), p50/p95;
* storage: bytes per row of each series table, measured on this database, and the bytes per
  day a 1000-port host with every rule hit writes, and keeps once retention is full.

Served through Django's test client (no socket). Prints JSON; asserts nothing about time.
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


def _timed(client: Any, url: str, repeat: int) -> dict[str, float]:
    """Wall and CPU time per request: on a shared, loaded machine the wall time mostly measures
    the neighbours; this process's CPU time is what a change to the page moves."""
    times, cpu = [], []
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        response = client.get(url)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        assert response.status_code == 200, (url, response.status_code)
    return {"p50_ms": round(statistics.median(times) * 1000, 1),
            "p95_ms": round(_p95(times) * 1000, 1),
            "cpu_p50_ms": round(statistics.median(cpu) * 1000, 1),
            "cpu_p95_ms": round(_p95(cpu) * 1000, 1)}  # fmt: skip


def _table_bytes(model: Any) -> float | None:
    """Bytes per row of a table (with its indexes) on this database."""
    from django.db import connection

    rows = model.objects.count()
    if not rows:
        return None
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_total_relation_size(%s)", [table])
            return cursor.fetchone()[0] / rows
        cursor.execute(
            "SELECT SUM(pgsize) FROM dbstat WHERE name = %s OR name IN "
            "(SELECT name FROM sqlite_master WHERE tbl_name = %s AND type = 'index')",
            [table, table],
        )
        found = cursor.fetchone()[0]
        return found / rows if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument(
        "--host-rules", type=int, default=100, help="group rules on the host (storage figure)"
    )
    parser.add_argument("--host-ports", type=int, default=1000)
    args = parser.parse_args()

    scratch = tempfile.mkdtemp(prefix="sgweb-bench-")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{scratch}/bench.sqlite3")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sgweb.settings")
    os.environ.setdefault("SECRET_KEY", "bench")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    settings.ALLOWED_HOSTS = ["*"]
    settings.SGWEB_PUBLISH_TO_HOSTS = False
    settings.SGWEB_LIVE_EVENTS = False
    setup_test_environment()
    call_command("migrate", verbosity=0)

    from sgweb.accounting.actions import add_samples
    from sgweb.accounting.models import HostSample, PortSample, RuleSample, RuleUsage
    from sgweb.networks.models import Host, Network, Port
    from sgweb.security.models import SecurityGroup, SecurityGroupRule
    from sgweb.tenancy.choices import Role
    from sgweb.tenancy.models import Project, Quota
    from tests.personas import make_user

    project = Project.objects.create(name="bench")
    Quota.objects.create(project=project, security_group_rules=args.rules + 10)
    user = make_user("bench-admin", Role.ADMIN)
    group = SecurityGroup.objects.create(project=project, name="bench-100")
    rules = SecurityGroupRule.objects.bulk_create(
        SecurityGroupRule(id=uuid.uuid4(), security_group=group, project=project,
                          direction="ingress", ethertype="IPv4", protocol="tcp",
                          port_range_min=1000 + i, port_range_max=1000 + i)
        for i in range(args.rules)
    )  # fmt: skip
    now = int(time.time())
    started = time.perf_counter()
    # Enough of each step for the pages and the row sizes (a full day of 10 s buckets for 100
    # rules is 864k rows: minutes of seeding, same figures).
    for step, keep in ((10, 2 * 3600), (60, 86400)):
        buckets = range((now - keep) // step * step, now // step * step + step, step)
        for rule in rules:
            add_samples(RuleSample, ("rule_id", "step", "bucket"), ("packets", "bytes"),
                        [(rule.id.hex, step, b, 5, 420) for b in buckets])  # fmt: skip
    hourly = range((now - 30 * 86400) // 3600 * 3600, now // 3600 * 3600 + 3600, 3600)
    for rule in rules:
        add_samples(RuleSample, ("rule_id", "step", "bucket"), ("packets", "bytes"),
                    [(rule.id.hex, 3600, b, 5, 420) for b in hourly])  # fmt: skip
    RuleUsage.objects.bulk_create(RuleUsage(rule=rule, packets=1, bytes=84) for rule in rules)
    host = Host.objects.create(name="bench-host")
    network = Network.objects.create(project=project, name="bench-net")
    port = Port.objects.create(project=project, network=network, mac_address="fa:16:3e:00:00:01",
                               host=host)  # fmt: skip
    add_samples(PortSample, ("port_id", "direction", "step", "bucket"), ("accepted", "dropped"),
                [(port.id.hex, d, 60, b, 5, 1) for d in ("ingress", "egress")
                 for b in range((now - 86400) // 60 * 60, now, 60)])  # fmt: skip
    add_samples(HostSample, ("host_id", "chain", "step", "bucket"), ("packets", "bytes"),
                [(host.pk, c, 10, b, 5, 420) for c in ("FORWARD", "INPUT", "sg-chain",
                 "sg-fallback") for b in range((now - 86400) // 10 * 10, now, 10)])  # fmt: skip
    seeded = time.perf_counter() - started

    from sgweb.gctune import tune_for_serving

    tune_for_serving()  # as sgweb.asgi does in the server process
    client = Client()
    client.force_login(user)
    result: dict[str, Any] = {
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "rules": args.rules,
        "rule_samples": RuleSample.objects.count(),
        "seed_s": round(seeded, 1),
        "group_page_100_sparklines_1h": _timed(client, f"/security-groups/{group.pk}", args.repeat),
        "group_page_100_sparklines_1w": _timed(
            client, f"/security-groups/{group.pk}?window=1w", args.repeat
        ),
    }
    from sgweb.tenancy.actions import create_api_token

    _, key = create_api_token(user, name="bench")
    api = Client(HTTP_X_AUTH_TOKEN=key)
    result["rule_30_day_series_api"] = _timed(
        api, f"/networking/v2.0/security-group-rules/{rules[0].id}/hits?window=30d", args.repeat
    )
    result["port_page"] = _timed(client, f"/ports/{port.pk}", max(5, args.repeat // 3))
    sizes = {model.__name__: _table_bytes(model) for model in (RuleSample, PortSample, HostSample)}
    result["bytes_per_row"] = {
        name: round(size, 1) if size else None for name, size in sizes.items()
    }
    result["storage_1000_port_host_every_rule_hit"] = storage(args, settings, sizes)
    print(json.dumps(result, indent=2))


def storage(args: Any, settings: Any, sizes: dict[str, float | None]) -> dict[str, Any]:
    """Rows and bytes a host writes per day, and keeps once every step's retention is full."""
    rule_bytes = sizes["RuleSample"] or 0.0
    port_bytes = sizes["PortSample"] or rule_bytes
    host_bytes = sizes["HostSample"] or rule_bytes
    series = {
        "rules": (args.host_rules, settings.SGWEB_ACCOUNTING_RETENTION, rule_bytes),
        "ports": (args.host_ports * 2, settings.SGWEB_ACCOUNTING_PORT_RETENTION, port_bytes),
        "host chains": (4, settings.SGWEB_ACCOUNTING_RETENTION, host_bytes),
    }
    out: dict[str, Any] = {}
    total_day = total_kept = 0.0
    for name, (count, retention, row) in series.items():
        per_day = sum(count * 86400 // step for step, _keep in retention)
        kept = sum(count * keep // step for step, keep in retention)
        out[name] = {"series": count, "rows_per_day": per_day, "rows_kept": kept,
                     "mb_per_day": round(per_day * row / 1e6, 1),
                     "mb_kept": round(kept * row / 1e6, 1)}  # fmt: skip
        total_day += per_day * row
        total_kept += kept * row
    out["total_mb_per_day"] = round(total_day / 1e6, 1)
    out["total_mb_kept"] = round(total_kept / 1e6, 1)
    out["retention"] = {"rules_and_hosts": settings.SGWEB_ACCOUNTING_RETENTION,
                        "ports": settings.SGWEB_ACCOUNTING_PORT_RETENTION}  # fmt: skip
    return out


if __name__ == "__main__":
    main()
