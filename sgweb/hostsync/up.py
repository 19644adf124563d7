"""`manage.py up` start-up hook: the control worker, and re-sending state to hosts that lag.

`sgweb.tenancy.management.commands.up` calls `start(command, options)` after migrating and
starting Redis. A control plane that was down while things changed converges here: every host
whose applied revision lags, or whose desired state Redis lost, is published again.
"""

from __future__ import annotations

from typing import Any

import redis

from sgweb.hostsync import processes
from sgweb.hostsync.reconcile import reconcile


def start(command: Any, options: dict[str, Any]) -> None:
    outcome = reconcile(startup=True)
    if outcome.error:
        command.stderr.write(f"host agents: Redis unreachable ({outcome.error}); not started")
        return
    if outcome.published:
        command.stdout.write(f"host agents: state re-sent to {', '.join(outcome.published)}")
    if options.get("no_serve"):
        # Set-up only (CI's smoke run, scripts): leave nothing running behind.
        command.stdout.write("host agents: control worker not started (--no-serve)")
        return
    try:
        pid, started = processes.ensure_control_worker()
    except (OSError, redis.RedisError) as error:
        command.stderr.write(f"host agents: control worker not started ({error})")
        return
    log = processes.run_dir() / "control.log"
    if started:
        # The worker outlives this hook on purpose; `up` stops it when serving ends.
        command.started_pids.append(pid)
    verb = "started" if started else "already running"
    command.stdout.write(f"host agents: control worker {verb} (pid {pid}, log {log})")
