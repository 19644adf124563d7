"""A lab for browser tests: the lab-test stack (tests/lab/stack.py: its own database, Redis keys,
`sgwt-` namespaces, agents, control worker) plus the real ASGI server (daphne) serving the
dashboard and the websockets from that same installation, and a dashboard admin to log in as.

`close()` (always called by the fixture) stops daphne and tears the stack down, namespaces too.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from typing import Any

from tests.lab.stack import PROBE, Stack, _free_port, wait_for

DASHBOARD_USER = "browser-admin"
DASHBOARD_PASSWORD = "browser tests only"


class LiveLab:
    def __init__(self, hosts: int = 2, vms: int = 2, net2_vms: int = 0) -> None:
        # No second network by default: the pages count the group's ports. With one, the lab
        # has lab-net2 and the router lab-router between the two on a network node.
        self.stack = Stack(hosts=hosts, vms=vms, net2_vms=net2_vms)
        self.url = ""
        self.daphne: Any = None

    def start(self) -> LiveLab:
        self.stack.start()
        self.stack.manage(
            "shell",
            "-c",
            "from django.contrib.auth.models import User; from sgweb.tenancy.models import Profile;"
            f"u = User.objects.create_user({DASHBOARD_USER!r}, password={DASHBOARD_PASSWORD!r});"
            "Profile.objects.update_or_create(user=u, defaults={'role': 'admin'})",
        )
        port = _free_port()
        env = {**self.stack.env, "DEBUG": "1", "ALLOWED_HOSTS": "127.0.0.1,localhost"}
        argv = ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m", "daphne",
                "-b", "127.0.0.1", "-p", str(port), "sgweb.asgi:application"]  # fmt: skip
        self.daphne = self.stack.runner.spawn(argv)
        self.stack.processes.append(self.daphne)
        self.url = f"http://127.0.0.1:{port}"
        wait_for("daphne", self._answers, timeout=30, every=0.2)
        self.stack.wait_in_sync(timeout=40)
        return self

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/accounts/login", timeout=2) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def close(self) -> None:
        self.stack.close()

    # -- lab helpers --------------------------------------------------------------------------

    def vm(self, name: str) -> dict[str, Any]:
        return self.stack.vm(name)

    def add_rule(self, **fields: Any) -> str:
        body = {"security_group_id": self.stack.state["group_id"], "direction": "ingress",
                "ethertype": "IPv4", **fields}  # fmt: skip
        rule = self.stack.api("POST", "/security-group-rules", {"security_group_rule": body})
        return rule["security_group_rule"]["id"]

    def delete_rule(self, rule_id: str) -> None:
        self.stack.api("DELETE", f"/security-group-rules/{rule_id}")

    def ping(self, src: str, dst: str, count: int = 4) -> bool:
        """`count` echo requests of one flow from VM `src` to VM `dst` (like `ping -c`)."""
        argv = [sys.executable, "-I", PROBE, "icmp", self.stack.ip(dst), "--count", str(count),
                "--timeout", "0.5"]  # fmt: skip
        result = self.stack.runner.run(argv, netns=self.vm(src)["netns"], check=False, timeout=15)
        return result.returncode == 0


def log_in(page: Any, lab: LiveLab) -> None:
    page.goto(f"{lab.url}/accounts/login")
    page.fill("#id_username", DASHBOARD_USER)
    page.fill("#id_password", DASHBOARD_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{lab.url}/")
