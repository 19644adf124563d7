"""`manage.py up`: migrate, demo admin and data, Redis, host agents, then the ASGI server."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import redis
from daphne.cli import CommandLineInterface
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from sgweb.hostsync import processes
from sgweb.hostsync.reconcile import reconcile
from sgweb.kernel.runner import SubprocessRunner
from sgweb.lab.core import bring_up
from sgweb.operations.demo import ensure_admin, ensure_demo


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Command(BaseCommand):
    help = "Set up sgweb (migrations, demo admin and data, Redis) and serve it on port 8000."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--no-serve", action="store_true", help="set up, then exit")
        parser.add_argument("--port", type=int, default=8000)
        # This machine only: the demo prints its admin's password. Serving other machines
        # is a choice (--bind 0.0.0.0 and ALLOWED_HOSTS; see the README's production layout).
        parser.add_argument("--bind", default="127.0.0.1")
        parser.add_argument("--no-demo", action="store_true", help="no demo project")
        parser.add_argument("--no-redis", action="store_true", help="do not start Redis")
        parser.add_argument(
            "--no-hooks",
            action="store_true",
            help="no host-agent start-up (no re-sending of lagging hosts, no control worker)",
        )
        parser.add_argument(
            "--lab",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="build lab compute hosts (namespaces + agents); default: when root and serving",
        )
        parser.add_argument(
            "--reset-admin-password",
            action="store_true",
            help="give the existing demo admin a new password (printed)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Background processes that start-up hooks launched, stopped when serving ends.
        self.started_pids: list[int] = []
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("database: migrated")
        if not options["no_redis"]:
            # Before the demo data: its changes are published to the hosts through Redis.
            self._ensure_redis()
        admin = ensure_admin(reset_password=options["reset_admin_password"])
        if not options["no_demo"]:
            created = ensure_demo(User.objects.get(username=admin.username))
            self.stdout.write("demo data: " + ("created" if created else "already there"))
        if not options["no_hooks"]:
            self._start_host_agents(options)
        lab = options["lab"]
        if lab is None:
            lab = os.geteuid() == 0 and not options["no_serve"]
        if lab:
            self._start_lab()
        self._print_credentials(admin, options)
        if options["no_serve"]:
            return
        self._serve(options["bind"], options["port"])

    def _print_credentials(self, admin: Any, options: dict[str, Any]) -> None:
        host = "localhost" if options["bind"] in ("0.0.0.0", "::", "127.0.0.1") else options["bind"]
        url = f"http://{host}:{options['port']}"
        password = admin.password or "(unchanged; --reset-admin-password prints a new one)"
        self.stdout.write(
            self.style.SUCCESS(
                "\n".join(
                    [
                        "",
                        f"  dashboard   {url}/",
                        f"  username    {admin.username}",
                        f"  password    {password}",
                        f"  API token   {admin.token}",
                        f"  API         {url}/networking/v2.0  (X-Auth-Token)",
                        f"  openstack   openstack --os-auth-type admin_token "
                        f"--os-endpoint {url}/networking --os-token {admin.token} "
                        "security group list",
                        "",
                    ]
                )
            )
        )

    def _ensure_redis(self) -> None:
        parts = urlsplit(settings.REDIS_URL)
        host, port = parts.hostname or "127.0.0.1", parts.port or 6379
        if _listening(host, port):
            self.stdout.write(f"redis: listening on {host}:{port}")
            return
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise CommandError(f"Redis at {host}:{port} is not reachable (REDIS_URL)")
        server = shutil.which("redis-server")
        if server is None:
            self.stderr.write(
                "redis: not running and redis-server is not installed; live "
                "updates and host agents need it (apt-get install redis-server)"
            )
            return
        SubprocessRunner().run(
            [server, "--port", str(port), "--bind", host, "--daemonize", "yes",
             "--save", "", "--appendonly", "no"],
        )  # fmt: skip
        for _ in range(50):
            if _listening(host, port):
                self.stdout.write(f"redis: started on {host}:{port}")
                return
            time.sleep(0.1)
        raise CommandError(f"redis-server did not start listening on {host}:{port}")

    def _start_host_agents(self, options: dict[str, Any]) -> None:
        """The control worker, after re-sending state to hosts that lag: a control plane that
        was down while things changed converges here (what the outbox holds, every host whose
        stored or applied state differs in content from the database's, is published again)."""
        outcome = reconcile(startup=True)
        if outcome.error:
            self.stderr.write(f"host agents: Redis unreachable ({outcome.error}); not started")
            return
        if outcome.published:
            self.stdout.write(f"host agents: state re-sent to {', '.join(outcome.published)}")
        for host, why in sorted(outcome.failed.items()):
            self.stderr.write(f"host agents: {host}: {why} (retried by the reconciler)")
        if options.get("no_serve"):
            # Set-up only (CI's smoke run, scripts): leave nothing running behind.
            self.stdout.write("host agents: control worker not started (--no-serve)")
            return
        try:
            pid, started = processes.ensure_control_worker()
        except (OSError, redis.RedisError) as error:
            self.stderr.write(f"host agents: control worker not started ({error})")
            return
        log = processes.run_dir() / "control.log"
        if started:
            # The worker outlives this step on purpose; `up` stops it when serving ends.
            self.started_pids.append(pid)
        verb = "started" if started else "already running"
        self.stdout.write(f"host agents: control worker {verb} (pid {pid}, log {log})")

    def _start_lab(self) -> None:
        """Lab compute hosts with real agents (issue 4); a failure leaves the web side usable."""
        try:
            state = bring_up(2, 2, prefix=settings.SGWEB_LAB_PREFIX)
        except Exception as error:  # the dashboard and API are still worth serving
            self.stderr.write(f"lab: not started ({error}); `manage.py lab up` retries")
            return
        hosts = ", ".join(getattr(state, "hosts", []) or [])
        self.stdout.write(f"lab: hosts {hosts} up with their agents (`manage.py lab down` stops)")

    def _serve(self, bind: str, port: int) -> None:
        self.stdout.write(f"serving sgweb.asgi on {bind}:{port} (Ctrl-C stops)")
        try:
            CommandLineInterface().run(["-b", bind, "-p", str(port), "sgweb.asgi:application"])
        finally:
            for pid in self.started_pids:
                processes.stop(pid)
            if self.started_pids:
                self.stdout.write("stopped the workers this run started; lab hosts keep running")
