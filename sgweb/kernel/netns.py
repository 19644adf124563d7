"""Network namespaces by name: list them by prefix, remove them for good."""

from __future__ import annotations

import contextlib
import os

from sgweb.kernel.runner import NETNS_DIR, CommandRunner


def list_namespaces(prefix: str) -> list[str]:
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(name for name in names if name.startswith(prefix))


def remove_namespace(name: str, runner: CommandRunner) -> bool:
    """Delete one namespace by its exact name; False when it did not exist.

    Processes still running inside it (listeners, captures started by us) are killed first,
    because a process keeps its namespace and devices alive after `ip netns del`.
    """
    if not os.path.exists(os.path.join(NETNS_DIR, name)):
        runner.release_netns(name)
        return False
    runner.release_netns(name)
    pids = runner.run(["ip", "netns", "pids", name], check=False).stdout.split()
    for pid in pids:
        if pid.isdigit() and int(pid) != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
    runner.run(["ip", "netns", "del", name], check=False)
    return True


def remove_namespaces(prefix: str, runner: CommandRunner) -> list[str]:
    """Delete every namespace whose name starts with `prefix`; safe to call repeatedly."""
    if not prefix:
        raise ValueError("refusing to remove namespaces with an empty prefix")
    return [name for name in list_namespaces(prefix) if remove_namespace(name, runner)]
