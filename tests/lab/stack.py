"""A whole sgweb installation for lab tests: its own database, Redis keys, queues and lab.

Everything runs as real processes: `manage.py lab up` (namespaces, agents, control worker),
`manage.py runserver` for the Neutron API. Names are unique per run (`sgwt-<pid>-<random>-`),
so parallel runs do not meet; `close()` removes it all, also after a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from sgweb.hostsync.processes import alive
from sgweb.kernel.runner import SpawnedProcess, default_runner
from sgweb.kernel.topology import list_namespaces, remove_namespaces

ROOT = Path(__file__).resolve().parents[2]
MANAGE = str(ROOT / "manage.py")
ECHO = str(Path(__file__).with_name("echo.py"))
PROBE = str(ROOT / "sgweb" / "kernel" / "probe.py")
TEST_REDIS_DB = 11


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    what: str,
    check: Callable[[], Any],
    timeout: float = 20.0,
    every: float = 0.05,
    explain: Callable[[], str] | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            details = f"\n{explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{details}")
        time.sleep(every)


_OWNED = re.compile(r"^sgwt[-_](\d+)[-_][0-9a-f]{6}")


def sweep_dead_stacks() -> None:
    """Remove what stacks of test processes that died without cleaning up left behind.

    Only things named after a dead owner pid: processes whose environment says
    SGWEB_OWNER_PID=<dead pid> (agents and control workers also exit by themselves), namespaces
    and databases named sgwt-<dead pid>-<6 hex>.
    """
    runner = default_runner()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        owner = next((e[16:] for e in environ if e.startswith(b"SGWEB_OWNER_PID=")), None)
        if owner and owner.isdigit() and not alive(int(owner)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
    dead = {
        match.group(0)
        for name in list_namespaces("sgwt-")
        if (match := _OWNED.match(name)) and not alive(int(match.group(1)))
    }
    for prefix in dead:
        remove_namespaces(prefix + "-", runner)
    listing = runner.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc",
         "select datname from pg_database where datname like 'sgwt\\_%'"],
        check=False, timeout=10,
    )  # fmt: skip
    for name in listing.stdout.split():
        match = _OWNED.match(name)
        if match and not alive(int(match.group(1))):
            runner.run(
                ["dropdb", "--if-exists", "--force", "-h", "127.0.0.1", "-U", "postgres", name],
                check=False,
                timeout=30,
            )


class Stack:
    def __init__(
        self, hosts: int = 2, vms: int = 2, redis_port: int = 6379, net2_vms: int = 1
    ) -> None:
        self.runner = default_runner()
        self.prefix = f"sgwt-{os.getpid()}-{secrets.token_hex(3)}-"
        self.tmp = Path(tempfile.mkdtemp(prefix="sgwt-stack-"))
        self.redis_url = f"redis://127.0.0.1:{redis_port}/{TEST_REDIS_DB}"
        self.key_prefix = self.prefix.rstrip("-")
        self.env = {
            "DATABASE_URL": self._database_url(),
            "REDIS_URL": self.redis_url,
            "CELERY_BROKER_URL": self.redis_url,
            "CELERY_RESULT_BACKEND": self.redis_url,
            "SGWEB_KEY_PREFIX": self.key_prefix,
            "SGWEB_CONTROL_QUEUE": f"control-{self.key_prefix}",
            "SGWEB_LAB_DIR": str(self.tmp / "lab"),
            "SGWEB_POLL_INTERVAL_S": "1",
            "SGWEB_RECONCILE_INTERVAL_S": "2",
            "PYTHONPATH": str(ROOT),
            "SGWEB_PUBLISH_TO_HOSTS": "1",
            # Workers exit by themselves if this test process dies without cleaning up.
            "SGWEB_OWNER_PID": str(os.getpid()),
        }
        self.redis = redis.Redis.from_url(self.redis_url)
        self.processes: list[SpawnedProcess] = []
        self.server: SpawnedProcess | None = None
        self.state: dict[str, Any] = {}
        self.token = ""
        self.base_url = ""
        self.hosts, self.vms = hosts, vms
        self.net2_vms = net2_vms  # the first host's VMs on the lab's second network

    # -- life cycle ---------------------------------------------------------------------------

    def _database_url(self) -> str:
        """PostgreSQL when it listens (CI starts it): web, control worker and lab write at once,
        which SQLite answers with "database is locked". Otherwise a SQLite file."""
        self.pg_database = ""
        try:
            with socket.create_connection(("127.0.0.1", 5432), timeout=0.3):
                pass
        except OSError:
            return f"sqlite:///{self.tmp}/db.sqlite3"
        name = self.key_prefix.replace("-", "_")
        result = self.runner.run(
            ["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=False, timeout=30
        )
        if result.returncode != 0:
            return f"sqlite:///{self.tmp}/db.sqlite3"
        self.pg_database = name
        return f"postgresql://postgres@127.0.0.1:5432/{name}"

    def manage(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        argv = ["env", *(f"{k}={v}" for k, v in self.env.items()), sys.executable, MANAGE, *args]
        result = self.runner.run(argv, timeout=timeout, check=check)
        return result.stdout

    def start(self) -> Stack:
        sweep_dead_stacks()
        self.manage("migrate", "-v0", "--skip-checks")
        out = self.manage(
            "lab", "up", "--hosts", str(self.hosts), "--vms", str(self.vms),
            "--net2-vms", str(self.net2_vms),
            "--prefix", self.prefix, "--json",
        )  # fmt: skip
        self.state = json.loads(out[out.index("{") :])
        self.token = (
            self.manage(
                "shell",
                "-c",
                "from sgweb.lab.core import _lab_actor; from sgweb.tenancy.actions import "
                "create_api_token; print(create_api_token(_lab_actor(), name='tests')[1])",
            )
            .strip()
            .splitlines()[-1]
        )
        port = _free_port()
        argv = ["env", *(f"{k}={v}" for k, v in self.env.items()), sys.executable, MANAGE,
                "runserver", "--noreload", "--skip-checks", f"127.0.0.1:{port}"]  # fmt: skip
        self.server = self.runner.spawn(argv)
        self.base_url = f"http://127.0.0.1:{port}/networking/v2.0"
        wait_for("the API server", lambda: self._answers(), timeout=30, every=0.2)
        return self

    def _answers(self) -> bool:
        try:
            self.api("GET", "/security-groups")
            return True
        except (OSError, AssertionError):
            return False

    def close(self) -> None:
        for process in self.processes:
            process.stop(timeout=2)
        if self.server is not None:
            self.server.stop(timeout=3)
        try:
            self.manage("lab", "down", "--prefix", self.prefix, timeout=60, check=False)
        finally:
            remove_namespaces(self.prefix, self.runner)
            # Our keys, and the broker's queues and bindings of our hosts and control queue.
            for key in self.redis.scan_iter(f"*{self.key_prefix}*"):
                self.redis.delete(key)
            shutil.rmtree(self.tmp, ignore_errors=True)
            if self.pg_database:
                self.runner.run(
                    ["dropdb", "--if-exists", "--force", "-h", "127.0.0.1", "-U", "postgres",
                     self.pg_database],
                    check=False, timeout=30,
                )  # fmt: skip

    # -- driving --------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"X-Auth-Token": self.token, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path}: {error.code} {error.read().decode()}") from None
        return json.loads(text) if text else {}

    def vm(self, name: str) -> dict[str, Any]:
        return next(vm for vm in self.state["vms"] if vm["name"] == name)

    def ip(self, name: str, family: int = 4) -> str:
        for address in self.vm(name)["addresses"]:
            if (":" in address) == (family == 6):
                return address.split("/")[0]
        raise KeyError(name)

    def host_of(self, name: str) -> str:
        return self.vm(name)["host"]

    def probe(
        self,
        src: str,
        dst: str,
        protocol: str = "icmp",
        port: int | None = None,
        family: int = 4,
    ) -> bool:
        argv = [sys.executable, "-I", PROBE, protocol, self.ip(dst, family), "--timeout", "0.3"]
        if port is not None:
            argv += ["--port", str(port)]
        result = self.runner.run(argv, netns=self.vm(src)["netns"], check=False, timeout=10)
        return result.returncode == 0

    def spawn_in(self, vm: str, argv: list[str], stream: bool = False) -> SpawnedProcess:
        process = self.runner.spawn(argv, netns=self.vm(vm)["netns"], stream_stdout=stream)
        self.processes.append(process)
        return process

    def listen(self, vm: str, port: int) -> SpawnedProcess:
        process = self.spawn_in(vm, [sys.executable, "-I", ECHO, "serve", str(port)])
        time.sleep(0.3)
        return process

    # -- observing ----------------------------------------------------------------------------

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 20.0, **kw: Any) -> Any:
        """`wait_for` that says, on timeout, what every host and agent was doing."""
        return wait_for(what, check, timeout, explain=self.diagnose, **kw)

    def diagnose(self) -> str:
        lines = []
        for host in self.state.get("hosts", []):
            report = self.applied_report(host)
            beat = self.redis.get(self.key(host, "heartbeat"))
            lines.append(
                f"{host}: desired r{self.desired_revision(host)}, last report "
                f"r{report.get('revision')} ok={report.get('ok')} error={report.get('error')}, "
                f"heartbeat={'yes' if beat else 'NO'}"
            )
            log = self.tmp / "lab" / f"agent-{host}.log"
            if log.exists():
                lines += ["  " + line for line in log.read_text().splitlines()[-6:]]
        if self.server is not None:
            output = self.server.read_output()[1].splitlines()
            errors = [line for line in output if " 50" in line]
            lines += [f"API errors: {errors[-5:]}"]
        return "\n".join(lines)

    def key(self, host: str, suffix: str) -> str:
        return f"{self.key_prefix}:host:{host}:{suffix}"

    def applied_report(self, host: str) -> dict[str, Any]:
        raw = self.redis.get(self.key(host, "applied"))
        return json.loads(raw) if raw else {}

    def heartbeat(self, host: str) -> dict[str, Any]:
        raw = self.redis.get(self.key(host, "heartbeat"))
        return json.loads(raw) if raw else {}

    def desired_revision(self, host: str) -> int:
        return int(self.redis.get(self.key(host, "desired_revision")) or 0)

    def in_sync(self, host: str) -> bool:
        report = self.applied_report(host)
        return bool(report.get("ok")) and report.get("revision", 0) >= self.desired_revision(host)

    def wait_in_sync(self, timeout: float = 20.0) -> None:
        hosts = self.state["hosts"]
        self.wait("every host in sync", lambda: all(self.in_sync(h) for h in hosts), timeout)

    def db(self, query: str, *params: Any) -> list[tuple]:
        """A read-only query with `?` placeholders, on whichever database the stack uses."""
        if self.pg_database:
            import psycopg

            url = f"postgresql://postgres@127.0.0.1:5432/{self.pg_database}"
            with psycopg.connect(url) as connection:
                return connection.execute(query.replace("?", "%s"), params).fetchall()
        with sqlite3.connect(self.tmp / "db.sqlite3", timeout=10) as connection:
            return connection.execute(query, params).fetchall()

    def agent_pid(self, host: str) -> int:
        return int((self.tmp / "lab" / f"agent-{host}.pid").read_text())

    def start_agent(self, host: str) -> SpawnedProcess:
        env = {**self.env, "SGWEB_HOST": host, "SGWEB_NETNS": host}
        argv = ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m", "worker"]
        process = self.runner.spawn(argv)
        self.processes.append(process)
        (self.tmp / "lab" / f"agent-{host}.pid").write_text(str(process.pid))
        return process

    def iptables_rules(self, host: str, family: int = 4) -> int:
        command = "iptables-save" if family == 4 else "ip6tables-save"
        saved = self.runner.run([command], netns=host).stdout
        return sum(1 for line in saved.splitlines() if line.startswith("-A "))


class PrivateRedis:
    """A redis-server of a test's own on a free port (never the machine's Redis): a test may
    kill it, start it again empty (no data is saved) or flush it, and touches nobody else."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process = self._spawn()

    def _spawn(self) -> SpawnedProcess:
        process = default_runner().spawn(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no"]
        )  # fmt: skip

        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        wait_for(f"redis on port {self.port}", answers, timeout=10)
        return process

    def kill(self) -> None:
        """SIGKILL: it dies mid-work, the way a crash would."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.stop(timeout=2)

    def start(self) -> None:
        """Start again on the same port, empty."""
        self.process = self._spawn()

    def restart_empty(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        self.process.stop(timeout=2)


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def stack_on(
    server: PrivateRedis, hosts: int, vms: int, env: dict[str, str] | None = None
) -> Iterator[Stack]:
    """A started stack whose Celery and Channels use `server`, with `env` added to its
    processes' environment; closed afterwards, also when a test fails."""
    if os.geteuid() != 0:
        pytest.skip("kernel: needs root")
    lab = Stack(hosts=hosts, vms=vms, redis_port=server.port)
    lab.env.update(env or {})
    try:
        yield lab.start()
    finally:
        lab.close()
