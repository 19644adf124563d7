"""Benchmark: dashboard page latency with 10,000 rules and 5,000 ports loaded.

Run: `.venv/bin/python -m bench.pages [--rules N] [--ports N] [--repeat N]`.
It uses a scratch SQLite database (or DATABASE_URL if set), seeds it through `seed_bulk`, and
prints p50/p95 per page as an admin and as a member, served through Django's test client
(the whole request/response cycle without a network socket). It prints figures; it asserts
nothing about time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--ports", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=30)
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
    setup_test_environment()
    call_command("migrate", verbosity=0)

    from sgweb.networks.models import Port
    from sgweb.security.models import SecurityGroup
    from sgweb.tenancy.models import Project
    from tests.dashboard.demo import seed_bulk, seed_demo

    started = time.perf_counter()
    seed_demo()
    alpha = Project.objects.get(name="alpha")
    seed_bulk(alpha, ports=args.ports, rules=args.rules, groups=max(1, args.rules // 100))
    print(f"seeded {args.rules} rules, {args.ports} ports in {time.perf_counter() - started:.1f}s")

    from django.contrib.auth.models import User

    group = SecurityGroup.objects.filter(name__startswith="bulk-group").first()
    port = Port.objects.filter(name__startswith="bulk-port").first()
    pages = {
        "overview": "/",
        "security groups": "/security-groups",
        "security groups search": "/security-groups?q=bulk-group-05",
        "security groups page 20": "/security-groups?page=2&sort=-rules",
        "group detail (100 rules)": f"/security-groups/{group.pk}",
        "ports": "/ports",
        "ports search by IP": "/ports?q=100.64.1.",
        "ports page 50 by host": "/ports?page=50&sort=host",
        "port detail": f"/ports/{port.pk}",
        "networks": "/networks",
        "hosts": "/hosts",
        "projects": "/projects",
        "audit": "/audit",
    }
    for username in ("adam", "alice"):
        client = Client()
        client.force_login(User.objects.get(username=username))
        print(f"\nas {username}: page, p50 ms, p95 ms, max ms ({args.repeat} requests each)")
        for name, path in pages.items():
            client.get(path)  # warm caches the way a second visitor would find them
            timings = []
            for _ in range(args.repeat):
                begin = time.perf_counter()
                response = client.get(path)
                timings.append((time.perf_counter() - begin) * 1000)
                assert response.status_code == 200, (path, response.status_code)
            timings.sort()
            p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
            print(f"  {name:28s} {statistics.median(timings):7.1f} {p95:7.1f} {timings[-1]:7.1f}")


if __name__ == "__main__":
    main()
