"""`manage.py livebench`: the live-counter and static-verdict benchmark (see sgweb.live.bench).

Runs the benchmark in a child process, because it points Django at a scratch database and Redis
key space before settings are read.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand

from sgweb.kernel.runner import default_runner


class Command(BaseCommand):
    help = "Benchmark live counters (1000-port namespace host, 50 watchers) and static verdicts."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--ports", type=int, default=1000)
        parser.add_argument("--watchers", type=int, default=50)
        parser.add_argument("--probes", type=int, default=20)
        parser.add_argument("--static-only", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        argv = [
            sys.executable, "-m", "sgweb.live.bench", "--ports", str(options["ports"]),
            "--watchers", str(options["watchers"]), "--probes", str(options["probes"]),
        ]  # fmt: skip
        if options["static_only"]:
            argv.append("--static-only")
        # The benchmark prints JSON and cleans up after itself, also on failure.
        completed = default_runner().run(argv, check=False, timeout=1800)
        self.stderr.write(completed.stderr)
        self.stdout.write(completed.stdout)
        if completed.returncode:
            raise SystemExit(completed.returncode)
