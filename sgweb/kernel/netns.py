"""Network namespaces by name: list them by prefix, remove them for good, open things inside."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from sgweb.kernel.runner import CLONE_NEWNET, NETNS_DIR, CommandRunner

T = TypeVar("T")


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


def in_netns(netns: str | None, call: Callable[[], T]) -> T:
    """Run `call` in a short-lived thread that entered the namespace (sockets and files it
    opens stay bound to that namespace); the rest of the process never moves."""
    if netns is None:
        return call()
    made: dict[str, object] = {}

    def enter_and_call() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {netns}")
            finally:
                os.close(fd)
            made["value"] = call()
        except BaseException as exc:
            made["error"] = exc

    # A thread of its own enters the namespace and dies with it; what it opened stays there.
    thread = threading.Thread(target=enter_and_call, name=f"netns-open-{netns}", daemon=True)
    thread.start()
    thread.join()
    if "error" in made:
        raise made["error"]  # type: ignore[misc]
    return made["value"]  # type: ignore[return-value]
