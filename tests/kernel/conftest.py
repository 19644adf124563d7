"""Fixtures for the real-kernel tier: unique namespace prefixes that are always cleaned up.

Every namespace a test makes is named `sgwt-<pid>-<random>-<label>`. The prefix carries our pid so
that a sweep removes leftovers of dead test runs only, never the namespaces of a suite another
developer is running at the same moment.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator

import pytest

from sgweb.kernel.runner import SubprocessRunner
from sgweb.kernel.topology import list_namespaces, remove_namespace, remove_namespaces

TEST_PREFIX = "sgwt-"
# Exactly what new_prefix() makes; other suites' sgwt- namespaces are never swept from here.
_OWNER = re.compile(rf"^{TEST_PREFIX}(\d+)-[0-9a-f]{{6}}-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_namespaces(runner: SubprocessRunner) -> None:
    """Remove namespaces this module's fixtures made in test runs that have died."""
    for name in list_namespaces(TEST_PREFIX):
        owner = _OWNER.match(name)
        if owner is not None and not _alive(int(owner.group(1))):
            remove_namespace(name, runner)


@pytest.fixture(scope="session")
def kernel_runner() -> Iterator[SubprocessRunner]:
    runner = SubprocessRunner()
    sweep_stale_namespaces(runner)
    try:
        yield runner
    finally:
        remove_namespaces(f"{TEST_PREFIX}{os.getpid()}-", runner)
        runner.close()


def new_prefix() -> str:
    return f"{TEST_PREFIX}{os.getpid()}-{secrets.token_hex(3)}-"


@pytest.fixture
def netns_prefix(kernel_runner: SubprocessRunner) -> Iterator[str]:
    """A fresh prefix; every namespace under it is removed afterwards, also on failure."""
    prefix = new_prefix()
    try:
        yield prefix
    finally:
        remove_namespaces(prefix, kernel_runner)


@pytest.fixture
def scratch_netns(kernel_runner: SubprocessRunner, netns_prefix: str) -> str:
    """One empty namespace with loopback up."""
    name = netns_prefix + "scratch"
    kernel_runner.run(["ip", "netns", "add", name])
    kernel_runner.run(["ip", "link", "set", "lo", "up"], netns=name)
    return name
