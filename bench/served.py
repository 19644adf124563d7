"""The README's production layout on this machine, for benchmarks and tests: gunicorn's
threaded workers serving HTTP (`server="uvicorn"`: uvicorn's workers, the ASGI app, to compare),
a database of its own (a SQLite file, or a PostgreSQL
database created for it), Redis keys and queues of its own, no DEBUG, no static files.

`ServedSite(...).start()` migrates, starts the server and waits for it; `close()` stops it and
removes the database, also after a failure. `hammer()` is a small keep-alive HTTP/1.1 load
generator (asyncio, one connection per concurrent client), so the figures measure the server
rather than a client library.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sgweb.kernel.runner import SpawnedProcess, default_runner

ROOT = Path(__file__).resolve().parents[1]
MANAGE = str(ROOT / "manage.py")
TEST_REDIS_DB = 11
PG = ["-h", "127.0.0.1", "-U", "postgres"]
SERVERS = ("gunicorn", "uvicorn")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_listening() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


class ServedSite:
    def __init__(
        self,
        database: str = "sqlite",
        workers: int = 2,
        server: str = "gunicorn",
        threads: int = 4,
        **env: str,
    ) -> None:
        if database not in ("sqlite", "postgres"):
            raise ValueError(f"database {database!r}: sqlite or postgres")
        if server not in SERVERS:
            raise ValueError(f"server {server!r}: one of {', '.join(SERVERS)}")
        self.server_kind = server
        self.threads = threads
        self.runner = default_runner()
        self.database = database
        self.workers = workers
        self.name = f"sgwt_{os.getpid()}_{secrets.token_hex(3)}"
        self.tmp = Path(tempfile.mkdtemp(prefix="sgwt-served-"))
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.pg_database = self.name if database == "postgres" else ""
        redis_url = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
        self.env = {
            "DATABASE_URL": (
                f"postgresql://postgres@127.0.0.1:5432/{self.pg_database}"
                if self.pg_database
                else f"sqlite:///{self.tmp}/db.sqlite3"
            ),
            "SECRET_KEY_FILE": str(self.tmp / "secret_key"),
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "CELERY_RESULT_BACKEND": redis_url,
            "SGWEB_KEY_PREFIX": self.name,
            "SGWEB_CONTROL_QUEUE": f"control-{self.name}",
            "SERVE_STATIC": "0",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
            **env,
        }
        self.server: SpawnedProcess | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> ServedSite:
        if self.pg_database:
            self.runner.run(["createdb", *PG, self.pg_database], timeout=60)
        self.manage("migrate", "-v0", "--skip-checks", timeout=600)
        self.server = self.runner.spawn([*self._env_argv(), *self.server_argv()])
        self.wait_until("the server answers", self._answers, timeout=120)
        return self

    def server_argv(self) -> list[str]:
        if self.server_kind == "gunicorn":
            return [
                sys.executable, "-m", "gunicorn", "sgweb.wsgi:application",
                "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
                "--worker-class", "gthread", "--threads", str(self.threads),
                "--keep-alive", "75", "--forwarded-allow-ips", "127.0.0.1",
            ]  # fmt: skip
        return [
            sys.executable, "-m", "uvicorn", "sgweb.asgi:application",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
            "--lifespan", "off", "--no-access-log",
            "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1",
        ]  # fmt: skip

    def close(self) -> None:
        try:
            if self.server is not None:
                self.server.stop(timeout=10)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if self.pg_database:
                self.runner.run(
                    ["dropdb", "--if-exists", "--force", *PG, self.pg_database],
                    check=False,
                    timeout=60,
                )

    def __enter__(self) -> ServedSite:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- driving ------------------------------------------------------------------------------

    def _env_argv(self) -> list[str]:
        return ["env", *(f"{key}={value}" for key, value in self.env.items())]

    def manage(self, *args: str, timeout: float = 300) -> str:
        argv = [*self._env_argv(), sys.executable, MANAGE, *args]
        return self.runner.run(argv, timeout=timeout).stdout

    def python(self, code: str, timeout: float = 600) -> Any:
        """Run `code` with Django set up against this site's database; it prints one JSON
        document last, which is returned."""
        prelude = "from bench.djangosetup import setup; setup()\n"
        argv = [*self._env_argv(), sys.executable, "-c", prelude + code]
        out = self.runner.run(argv, timeout=timeout).stdout
        return json.loads(out.strip().splitlines()[-1])

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/accounts/login", timeout=5) as reply:
                return bool(reply.status == 200)
        except (OSError, urllib.error.URLError) as error:
            if self.server is not None and self.server.poll() is not None:
                raise AssertionError(
                    f"server exited: {self.server.read_output()[1][-2000:]}"
                ) from error
            return False

    def request(
        self, method: str, path: str, token: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"X-Auth-Token": token, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as reply:
                text = reply.read().decode()
                return reply.status, (json.loads(text) if text else {})
        except urllib.error.HTTPError as error:
            text = error.read().decode()
            return error.code, (json.loads(text) if text.startswith("{") else {"text": text})

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server and its worker processes: what a
        request costs, whatever else the machine is doing."""
        if self.server is None:
            return 0.0
        stats = _process_stats()
        family = {self.server.pid}
        grew = True
        while grew:
            grown = family | {pid for pid, (ppid, _, _) in stats.items() if ppid in family}
            grew, family = grown != family, grown
        return sum(stats[pid][1] for pid in family if pid in stats)

    def database_cpu_seconds(self) -> float:
        """CPU time used so far by the PostgreSQL backends serving this site's database (their
        command line names it): the other half of a request's cost, which the server's own
        CPU leaves out. 0 on SQLite, whose work is done inside the server's processes."""
        if not self.pg_database:
            return 0.0
        # "postgres: [cluster name: ]user database client activity"
        mark = f": postgres {self.pg_database} ".encode()
        return sum(cpu for _, cpu, cmdline in _process_stats(mark).values() if cmdline)

    def server_errors(self) -> str:
        return self.server.read_output()[1][-3000:] if self.server is not None else ""

    @staticmethod
    def wait_until(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.2)


def _process_stats(mark: bytes = b"") -> dict[int, tuple[int, float, bool]]:
    """Every process's parent, CPU seconds so far (user + system), and whether its command
    line holds `mark` (read only when a mark is given)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float, bool]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            marked = bool(mark) and mark in (entry / "cmdline").read_bytes()
        except OSError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / tick
        stats[int(entry.name)] = (int(fields[1]), cpu, marked)
    return stats


# -- load -----------------------------------------------------------------------------------


@dataclass
class Hammered:
    """What `hammer` saw: one latency per completed request, statuses, wall time."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def errors(self) -> int:
        return len(self.failures) + sum(n for code, n in self.statuses.items() if code >= 400)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms) or [0.0]

        def at(fraction: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)

        return {
            "requests": len(self.latencies_ms),
            "req_per_s": round(len(self.latencies_ms) / self.seconds, 1) if self.seconds else 0,
            "p50_ms": at(0.50),
            "p95_ms": at(0.95),
            "p99_ms": at(0.99),
            "max_ms": round(ordered[-1], 1),
            "errors": self.errors,
            "statuses": {str(code): n for code, n in sorted(self.statuses.items())},
        }


async def _one_client(
    port: int, paths: list[str], headers: dict[str, str], stop: Callable[[], bool], out: Hammered
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = "".join(f"{key}: {value}\r\n" for key, value in headers.items())
    index = 0
    try:
        while not stop():
            path = paths[index % len(paths)]
            index += 1
            began = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode())
            status_line = await reader.readline()
            length, status = 0, int(status_line.split()[1])
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            out.latencies_ms.append((time.perf_counter() - began) * 1000)
            out.statuses[status] = out.statuses.get(status, 0) + 1
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as error:
        out.failures.append(repr(error))
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def hammer(
    port: int,
    paths: list[str],
    headers: dict[str, str],
    *,
    concurrency: int = 16,
    seconds: float = 10.0,
    requests: int | None = None,
) -> Hammered:
    """`concurrency` keep-alive clients GET `paths` in turn for `seconds` (or until
    `requests` completed)."""
    out = Hammered()

    async def main() -> None:
        deadline = time.monotonic() + seconds

        def stop() -> bool:
            if requests is not None:
                return len(out.latencies_ms) >= requests
            return time.monotonic() >= deadline

        began = time.perf_counter()
        await asyncio.gather(
            *(_one_client(port, paths, headers, stop, out) for _ in range(concurrency))
        )
        out.seconds = time.perf_counter() - began

    asyncio.run(main())
    return out
