"""Suite-wide policy: what may be skipped where.

On a developer's machine a test that needs root, Redis or Chromium is skipped with a reason when
that is missing. In CI (CI=true) nothing may be skipped: CI runs as root with every service, so a
skip there means a tier silently did not run, and we turn it into a failure.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _missing_requirement(marker: str) -> str | None:
    if marker == "kernel":
        if os.geteuid() != 0:
            return "needs root for network namespaces"
        if not shutil.which("iptables-restore") or not shutil.which("ipset"):
            return "needs iptables and ipset (bash .ci/setup installs them)"
    if marker == "redis" and not _listening("127.0.0.1", 6379):
        return "needs Redis on 127.0.0.1:6379"
    if marker == "postgres" and not _listening("127.0.0.1", 5432):
        return "needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth)"
    if marker == "postgres" and not shutil.which("createdb"):
        return "needs PostgreSQL's client programs (bash .ci/setup test installs them)"
    if marker == "browser" and not os.path.exists("/usr/bin/chromium"):
        return "needs Debian's chromium (bash .ci/setup test installs it)"
    return None


def pytest_configure(config: pytest.Config) -> None:
    """The test process publishes nothing to host agents and sends no live events unless a test
    turns that on (pytest-django's `settings` fixture): test hosts never land in the real Redis
    key space. Processes the tests start (lab stacks) keep the product's defaults."""
    from django.conf import settings

    settings.SGWEB_PUBLISH_TO_HOSTS = False
    settings.SGWEB_LIVE_EVENTS = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cache: dict[str, str | None] = {}
    for item in items:
        for marker in ("kernel", "redis", "browser", "postgres"):
            if item.get_closest_marker(marker) is None:
                continue
            if marker not in cache:
                cache[marker] = _missing_requirement(marker)
            reason = cache[marker]
            if reason:
                item.add_marker(pytest.mark.skip(reason=f"{marker}: {reason}"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not IN_CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = reporter.stats.get("skipped", [])
    if skipped and session.exitstatus == 0:
        reporter.write_line(
            f"CI: {len(skipped)} test(s) were skipped; in CI every tier must run, so this fails.",
            red=True,
        )
        for report in skipped[:20]:
            reporter.write_line(f"  skipped: {report.nodeid} ({report.longrepr[-1]})")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
