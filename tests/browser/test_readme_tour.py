"""The README's tour, replayed as a new user would on a fresh database (issue 14).

    .venv/bin/python manage.py up        # as root: demo data, the lab, the dashboard
    log in, open the lab group, add an ICMP rule, `manage.py lab ping h1-vm1 h2-vm2`,
    `manage.py lab ping h2-vm2 h1-net2-vm1` across the router, `?` for the keyboard shortcuts

`manage.py up` runs for real (migrations on an empty database, the printed admin password,
Redis, the control worker, a 2x2 lab of `sgwt-` namespaces with their agents, daphne), with its
own database, Redis keys, queues and directories; everything it started is stopped and the lab
taken down afterwards, also on failure. The first screen is calm: the demo hosts, which have no
agent, say so instead of "need attention".
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from sgweb.kernel.runner import SpawnedProcess, default_runner
from sgweb.kernel.topology import remove_namespaces
from tests.lab.stack import MANAGE, TEST_REDIS_DB, _free_port, sweep_dead_stacks, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.kernel, pytest.mark.redis]

LIVE_TIMEOUT_MS = 40_000


@dataclass
class Tour:
    url: str
    password: str
    env: dict[str, str]

    def manage(self, *args: str, check: bool = True) -> str:
        argv = ["env", *(f"{k}={v}" for k, v in self.env.items()), sys.executable, MANAGE, *args]
        return default_runner().run(argv, timeout=120, check=check).stdout


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/accounts/login", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def tour() -> Iterator[Tour]:
    if os.geteuid() != 0:
        pytest.skip("kernel: needs root")
    sweep_dead_stacks()
    tag = f"sgwt-{os.getpid()}-{secrets.token_hex(3)}"
    tmp = Path(tempfile.mkdtemp(prefix="sgwt-tour-"))
    port = _free_port()
    env = {
        "DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3",  # a fresh database, as on a new clone
        "REDIS_URL": f"redis://127.0.0.1:6379/{TEST_REDIS_DB}",
        "SGWEB_KEY_PREFIX": tag,
        "SGWEB_CONTROL_QUEUE": f"control-{tag}",
        "SGWEB_RUN_DIR": str(tmp / "run"),
        "SGWEB_LAB_DIR": str(tmp / "lab"),
        "SGWEB_LAB_PREFIX": f"{tag}-",
        "SGWEB_OWNER_PID": str(os.getpid()),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    argv = ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, MANAGE, "up",
            "--bind", "127.0.0.1", "--port", str(port)]  # fmt: skip
    up: SpawnedProcess = default_runner().spawn(argv)
    try:
        stdout = up.wait_for_output("serving sgweb.asgi", timeout=240)
        password = re.search(r"password\s+(\S+)", stdout)
        assert password, stdout
        url = f"http://127.0.0.1:{port}"
        wait_for("the dashboard", lambda: _answers(url), timeout=30, every=0.2)
        yield Tour(url, password.group(1), env)
    finally:
        # Ctrl-C, as the README says: `up` stops the control worker it started.
        if up.poll() is None:
            up.popen.send_signal(signal.SIGINT)
            deadline = time.monotonic() + 15
            while up.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        up.stop(timeout=5)
        tour_env = ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, MANAGE]
        default_runner().run([*tour_env, "lab", "down"], timeout=60, check=False)
        remove_namespaces(f"{tag}-", default_runner())
        client = redis.Redis.from_url(env["REDIS_URL"])
        for key in client.scan_iter(f"*{tag}*"):
            client.delete(key)
        shutil.rmtree(tmp, ignore_errors=True)


def test_the_readme_tour_on_a_fresh_database(page: Any, tour: Tour, screenshot: Any) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})  # the desktop width, then 800 px
    # Log in with the password `up` printed.
    page.goto(f"{tour.url}/accounts/login")
    page.fill("#id_username", "admin")
    page.fill("#id_password", tour.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{tour.url}/")
    # The first screen is calm: the demo hosts have no agent and say so.
    hosts = page.locator(".stat:has-text('Hosts')")
    assert "need attention" not in hosts.inner_text()
    assert "bad" not in (hosts.get_attribute("class") or "")
    assert "2 without an agent" in hosts.inner_text()
    for demo in ("compute1", "compute2"):
        row = page.locator(f"tr[data-host='{demo}']")
        assert "No agent" in row.inner_text() and "demo host, no agent" in row.inner_text()
    screenshot("tour-01-first-screen")

    # Open the lab group and add an ICMP rule.
    page.click("nav >> text=Security groups")
    page.get_by_role("link", name="lab-vms", exact=True).click()
    page.click("button.preset:has-text('ICMP (ping)')")
    with page.expect_navigation():
        page.click("button:has-text('Add rule')")
    # The change is followed to both lab hosts.
    page.wait_for_function(
        "() => (document.querySelector('[data-delivery-sentence]') || {}).textContent"
        "?.startsWith('Applied on 2/2 hosts')",
        timeout=LIVE_TIMEOUT_MS,
    )
    screenshot("tour-02-icmp-rule-applied")

    # `manage.py lab ping h1-vm1 h2-vm2` now gets its answer.
    out = tour.manage("lab", "ping", "h1-vm1", "h2-vm2")
    assert "h1-vm1 -> h2-vm2 icmp: ok" in out
    # `manage.py lab ping h2-vm2 h1-net2-vm1` crosses the router (no firewall group on it yet).
    out = tour.manage("lab", "ping", "h2-vm2", "h1-net2-vm1")
    assert "h2-vm2 -> h1-net2-vm1 icmp: ok" in out

    # `?` lists the keyboard shortcuts.
    page.keyboard.press("?")
    page.locator("#keyboard-help").wait_for(state="visible")
    page.keyboard.press("Escape")

    # The same first screen at 800 px keeps its key facts in view.
    page.set_viewport_size({"width": 800, "height": 900})
    page.goto(f"{tour.url}/")
    assert page.locator(".stat:has-text('Hosts')").is_visible()
    screenshot("tour-03-first-screen-800")
