"""`python -m bench.api_served`: the API's list pages served in the production layout.

Starts the README's production layout (gunicorn's threaded workers, DEBUG off, the PostgreSQL
connection pool or SQLite in WAL mode; `--server uvicorn` serves the ASGI app instead) on a
database of its own, loads the same data as `bench.api` (10,000 rules, 5,000 ports by default),
then keeps `--concurrency` keep-alive clients busy on each list page for `--seconds` and prints
JSON per database and page: requests per second, p50/p95/p99/max latency, errors, CPU per
request of the servers, of PostgreSQL's backends and of the load generator. Target (issue 10):
>= 200 req/s, p99 <= 250 ms, no errors, at concurrency 16 on a 2-core machine. The machine's
load average is printed with the figures: other work on the machine moves them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from bench.served import SERVERS, ServedSite, hammer, postgres_listening

BASE = "/networking/v2.0"


def targets(ctx: dict[str, Any]) -> list[tuple[str, list[str]]]:
    one_group = f"{BASE}/security-group-rules?security_group_id={ctx['group_id']}"
    return [
        ("security-groups", [f"{BASE}/security-groups"]),
        ("security-group-rules", [f"{BASE}/security-group-rules"]),
        ("ports", [f"{BASE}/ports"]),
        ("networks", [f"{BASE}/networks"]),
        ("rules of one group", [one_group]),
        (
            "mix of the four lists",
            [f"{BASE}/security-groups", f"{BASE}/security-group-rules", f"{BASE}/ports",
             f"{BASE}/networks"],
        ),
    ]  # fmt: skip


def seed(site: ServedSite, options: dict[str, Any]) -> dict[str, Any]:
    # PostgreSQL plans from statistics that autovacuum gathers within a minute or so of a bulk
    # load; without them the rules list sorted all 10,000 rules for each page (7.7 ms of the
    # backend's CPU per request instead of 0.3), which no running site would see.
    code = (
        "import json\nfrom django.db import connection\nfrom bench.api import load\n"
        f"ctx = load({options['rules']}, {options['ports']}, "
        f"{options['groups']}, {options['hosts']})\n"
        "if connection.vendor == 'postgresql':\n"
        "    with connection.cursor() as cursor:\n"
        "        cursor.execute('ANALYZE')\n"
        "print(json.dumps(ctx))"
    )
    return dict(site.python(code))


def measure(database: str, options: dict[str, Any]) -> dict[str, Any]:
    with ServedSite(
        database, workers=options["workers"], server=options["server"], threads=options["threads"]
    ) as site:
        ctx = seed(site, options)
        headers = {"X-Auth-Token": ctx[f"{options['persona']}_key"]}
        # Warm every worker's imports, caches and connections.
        for _name, paths in targets(ctx):
            hammer(site.port, paths, headers, concurrency=options["workers"] * 2, seconds=1.0)
        results = []
        cores = os.cpu_count() or 1
        for name, paths in targets(ctx):
            server_before, database_before = site.cpu_seconds(), site.database_cpu_seconds()
            client_before = time.process_time()
            seen = hammer(
                site.port, paths, headers,
                concurrency=options["concurrency"], seconds=options["seconds"],
            )  # fmt: skip
            count = max(1, len(seen.latencies_ms))
            server_ms = (site.cpu_seconds() - server_before) * 1000 / count
            database_ms = (site.database_cpu_seconds() - database_before) * 1000 / count
            client_ms = (time.process_time() - client_before) * 1000 / count
            total_ms = server_ms + database_ms + client_ms
            results.append(
                {
                    "page": name,
                    **seen.summary(),
                    # CPU per request: the servers', PostgreSQL's backends' (0 on SQLite) and
                    # the load generator's, and what the cores would serve if all of it were
                    # alone on them (other work on the machine excluded).
                    "server_cpu_ms_per_request": round(server_ms, 2),
                    "database_cpu_ms_per_request": round(database_ms, 2),
                    "client_cpu_ms_per_request": round(client_ms, 2),
                    "req_per_s_if_cores_were_idle": round(cores * 1000 / total_ms, 1)
                    if total_ms
                    else None,
                    "load_avg": _load(),
                }
            )
            if seen.failures:
                results[-1]["failures"] = seen.failures[:3]
        return {
            "database": database,
            "server": options["server"],
            "workers": options["workers"],
            "concurrency": options["concurrency"],
            "results": results,
        }


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api_served", description=__doc__)
    parser.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--server", choices=SERVERS, default="gunicorn")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn's threads per worker")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--ports", type=int, default=5_000)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--as", dest="persona", choices=("member", "admin"), default="member")
    options = vars(parser.parse_args(argv))
    databases = ["sqlite", "postgres"] if options["database"] == "both" else [options["database"]]
    if "postgres" in databases and not postgres_listening():
        parser.error("PostgreSQL does not listen on 127.0.0.1:5432")
    report = {
        "cpus": os.cpu_count(),
        "load_avg_before": _load(),
        "target": {"req_per_s": 200, "p99_ms": 250, "errors": 0},
        "runs": [measure(database, options) for database in databases],
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
