"""Background processes with pid files: the control worker here, the lab's agents in sgweb.lab.

Started detached (own session, output to a log file) through `sgweb.kernel.runner.spawn`, so
they outlive the command that started them; stopped by pid after checking the pid still is a
worker of ours (pids get recycled).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from django.conf import settings

from sgweb.kernel.runner import default_runner


def run_dir() -> Path:
    return Path(settings.SGWEB_RUN_DIR)


def spawn_detached(label: str, argv: list[str], env: dict[str, str], directory: Path) -> int:
    """Start `argv` (a Celery worker: it takes --logfile) in the background; write its pid."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / f"{label}.log"
    command = ["setsid", "env", *(f"{k}={v}" for k, v in env.items()), *argv, "--logfile", str(log)]
    handle = default_runner().spawn(command)
    (directory / f"{label}.pid").write_text(str(handle.pid))
    return handle.pid


def is_ours(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"worker" in cmdline  # a recycled pid would be some other program


def alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if waited == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def running(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) and is_ours(pid) else None


def stop(pid: int, timeout: float = 5.0) -> None:
    if not is_ours(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def worker_env() -> dict[str, str]:
    """What a worker we start inherits on top of our environment: the same broker and DB."""
    return {
        "PYTHONPATH": str(settings.BASE_DIR),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "SGWEB_KEY_PREFIX": settings.SGWEB_KEY_PREFIX,
        "SGWEB_CONTROL_QUEUE": settings.SGWEB_CONTROL_QUEUE,
        "SGWEB_RECONCILE_INTERVAL_S": str(settings.SGWEB_RECONCILE_INTERVAL_S),
        "DATABASE_URL": settings.DATABASE_URL,
    }


def control_worker_argv(name: str = "control") -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "sgweb.celery", "worker",
        "-Q", settings.SGWEB_CONTROL_QUEUE, "--pool", "solo", "--concurrency", "1",
        "--hostname", f"{name}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip


def ensure_control_worker(directory: Path | None = None) -> tuple[int, bool]:
    """(pid, started now) of the control worker recorded in `directory` (default var/run)."""
    directory = directory or run_dir()
    pid = running(directory / "control.pid")
    if pid is not None:
        return pid, False
    return spawn_detached("control", control_worker_argv(), worker_env(), directory), True
