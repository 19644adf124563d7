"""Live counters and ping-trace in the lab: real agents, real kernel, real websockets.

One stack per module (a lab host with two VMs, its agent and control worker, the API server)
plus a daphne serving the websockets, and a logged-in session for the lab user. The article's
section 4 is watched through a real `/ws/ports/<id>` connection; traces go through the JSON API
and the agent's kernel proof, and their stored messages are replayed over `/ws/traces/<id>`.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from bench.wsclient import WebSocketClosed, WsClient
from tests.lab.stack import PROBE, Stack

pytestmark = [pytest.mark.kernel, pytest.mark.redis]

SRC, DST = "h1-vm1", "h1-vm2"  # one host: every traversal is seen by its agent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveLab:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.ws_port = _free_port()
        env = [f"{k}={v}" for k, v in stack.env.items()]
        argv = ["env", *env, sys.executable, "-m", "daphne", "-b", "127.0.0.1",
                "-p", str(self.ws_port), "sgweb.asgi:application"]  # fmt: skip
        self.daphne = stack.runner.spawn(argv)
        stack.processes.append(self.daphne)
        stack.wait("daphne listening", self._listening, timeout=30, every=0.1)
        code = (
            "from django.contrib.sessions.backends.db import SessionStore\n"
            "from sgweb.lab.core import _lab_actor\n"
            "u = _lab_actor(); s = SessionStore()\n"
            "s['_auth_user_id'] = str(u.pk)\n"
            "s['_auth_user_backend'] = 'django.contrib.auth.backends.ModelBackend'\n"
            "s['_auth_user_hash'] = u.get_session_auth_hash(); s.create()\n"
            "print('SESSION', s.session_key)\n"
        )
        out = stack.manage("shell", "-c", code)
        self.session = out.split("SESSION", 1)[1].split()[0]
        self.http = stack.base_url.split("/networking", 1)[0]

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.ws_port), timeout=0.2):
                return True
        except OSError:
            return False

    def ws(self, path: str, *, cookie: bool = True) -> WsClient:
        return WsClient(
            "127.0.0.1", self.ws_port, path,
            cookie=f"sessionid={self.session}" if cookie else "",
            origin=f"http://127.0.0.1:{self.ws_port}",
        )  # fmt: skip

    def http_json(self, method: str, path: str, body: dict | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            self.http + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"X-Auth-Token": self.stack.token, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read().decode())

    def add_rule(self, **fields: Any) -> str:
        body = {"security_group_id": self.stack.state["group_id"], "direction": "ingress",
                "ethertype": "IPv4", **fields}  # fmt: skip
        rule = self.stack.api("POST", "/security-group-rules", {"security_group_rule": body})
        self.stack.wait_in_sync()
        return rule["security_group_rule"]["id"]

    def trace(self, **fields: Any) -> dict[str, Any]:
        body = {"source": self.stack.vm(SRC)["port_id"],
                "destination": self.stack.vm(DST)["port_id"], **fields}  # fmt: skip
        started = self.http_json("POST", "/api/traces", body)["trace"]
        assert started["status"] == "running", started

        def finished() -> dict[str, Any] | None:
            trace = self.http_json("GET", f"/api/traces/{started['id']}")["trace"]
            return trace if trace["status"] not in ("pending", "running") else None

        return self.stack.wait("the trace to finish", finished, timeout=30, every=0.2)

    def trace_rules_left(self) -> str:
        host = self.stack.host_of(SRC)
        saved = self.stack.runner.run(["iptables-save", "-t", "raw"], netns=host).stdout
        return "\n".join(line for line in saved.splitlines() if "TRACE" in line)


def running_lab(hosts: int, vms: int) -> Iterator[LiveLab]:
    """A started stack of `hosts` hosts with `vms` VMs each, for a module's `lab` fixture."""
    if os.geteuid() != 0:
        pytest.skip("kernel: needs root")
    # Only the VMs asked for: the live tests count the ports of the lab's group.
    stack = Stack(hosts=hosts, vms=vms, net2_vms=0)
    try:
        stack.start()
        yield LiveLab(stack)
    finally:
        stack.close()


@pytest.fixture(scope="module")
def lab() -> Iterator[LiveLab]:
    yield from running_lab(hosts=1, vms=2)


@pytest.fixture(scope="module")
def icmp_rule(lab: LiveLab) -> str:
    return lab.add_rule(protocol="icmp")


def _position(chains: dict[str, Any], role: str, **wanted: Any) -> tuple[str, int]:
    chain = next(c for c in chains["chains"] if c["family"] == 4 and c["role"] == role)
    rule = next(r for r in chain["rules"] if all(r[k] == v for k, v in wanted.items()))
    return chain["name"], rule["position"]


def _packets(counters: dict[str, Any], chain: str, position: int) -> int | None:
    for entry in counters["chains"]:
        if entry["name"] == chain and entry["family"] == 4:
            for rule in entry["rules"]:
                if rule["position"] == position:
                    return rule["packets"]
    return None


def test_anonymous_websockets_are_closed_with_4401(lab: LiveLab) -> None:
    client = lab.ws("/ws/events", cookie=False)
    with pytest.raises(WebSocketClosed) as closed:
        client.receive(timeout=10)
    assert closed.value.code == 4401


def test_four_pings_hit_the_icmp_rule_once_then_established_as_the_article_shows(
    lab: LiveLab, icmp_rule: str
) -> None:
    port_id = lab.stack.vm(DST)["port_id"]
    client = lab.ws(f"/ws/ports/{port_id}")
    try:
        chains = client.receive_type("chains")
        assert chains["port_id"] == port_id
        icmp = _position(chains, "ingress", rule_id=icmp_rule)
        established_in = _position(chains, "ingress", kind="established")
        established_out = _position(chains, "egress", kind="established")
        rule = next(
            r
            for c in chains["chains"]
            for r in c["rules"]
            if c["family"] == 4 and r["rule_id"] == icmp_rule
        )
        assert rule["label"].startswith("allow icmp from any (rule ")
        baseline = client.receive_type("counters", timeout=10)
        before = {key: _packets(baseline, *key) for key in (icmp, established_in, established_out)}
        assert None not in before.values(), baseline
        argv = [sys.executable, "-I", PROBE, "icmp", lab.stack.ip(DST), "--count", "4",
                "--timeout", "1"]  # fmt: skip
        sent = time.monotonic()
        result = lab.stack.runner.run(argv, netns=lab.stack.vm(SRC)["netns"], check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        wanted = {icmp: 1, established_in: 3, established_out: 4}
        deltas: dict = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            counters = client.receive_type("counters", timeout=10)
            deltas = {key: _packets(counters, *key) - before[key] for key in wanted}
            if deltas == wanted:
                break
        assert deltas == wanted
        print(f"\nfour pings visible to the watcher {time.monotonic() - sent:.2f} s after sending")
    finally:
        client.close()


def test_a_blocked_tcp_connection_is_traced_to_the_default_drop_and_the_kernel_agrees(
    lab: LiveLab,
) -> None:
    trace = lab.trace(protocol="tcp", port=5432)
    static, kernel = trace["static"], trace["kernel"]
    assert static["verdict"] == "DROP" and static["reason"] == "default-drop"
    assert "tcp/5432" in static["explanation"]
    assert trace["status"] == "done", kernel
    assert kernel["kernel_verdict"] == "DROP" and kernel["agrees"] is True, kernel
    assert "default drop" in kernel["summary"]
    assert lab.trace_rules_left() == ""


def test_an_allowed_ping_is_traced_to_the_allowing_rule_and_replayed_to_a_late_watcher(
    lab: LiveLab, icmp_rule: str
) -> None:
    trace = lab.trace(protocol="icmp")
    assert trace["static"]["verdict"] == "ACCEPT" and trace["static"]["reason"] == "rule"
    assert trace["kernel"]["kernel_verdict"] == "ACCEPT" and trace["kernel"]["agrees"] is True
    assert lab.trace_rules_left() == ""
    client = lab.ws(f"/ws/traces/{trace['id']}")
    try:
        replayed = [client.receive(timeout=10)]
        while replayed[-1]["type"] != "trace-result":
            replayed.append(client.receive(timeout=10))
    finally:
        client.close()
    kinds = [message["type"] for message in replayed]
    assert kinds[0] == "trace-static" and kinds[-1] == "trace-result"
    packets = [m for m in replayed if m["type"] == "trace-packet"]
    assert {p["direction"] for p in packets} == {"request", "reply"}
    steps = [step for packet in packets for step in packet["steps"]]
    allowing = [step for step in steps if step["rule_id"] == icmp_rule]
    assert allowing and allowing[0]["label"].startswith("allow icmp from any")
    assert all(p["verdict"] == "ACCEPT" for p in packets)
    replies = [step["label"] for p in packets if p["direction"] == "reply" for step in p["steps"]]
    assert any(label.startswith("allow RELATED,ESTABLISHED") for label in replies), replies


def test_a_group_watcher_sees_the_icmp_rule_hit_summed_over_ports_with_its_last_hit(
    lab: LiveLab, icmp_rule: str
) -> None:
    client = lab.ws(f"/ws/security-groups/{lab.stack.state['group_id']}")
    try:
        first = client.receive_type("rule-hits")
        assert next(r for r in first["rules"] if r["rule_id"] == icmp_rule)["ports"] == 2
        # The agent starts reading the group's chains now; what they held before is the baseline.
        settle = time.monotonic() + 2.5
        while time.monotonic() < settle:
            latest = client.receive_type("rule-hits", timeout=5)
        before = next(r for r in latest["rules"] if r["rule_id"] == icmp_rule)
        argv = [sys.executable, "-I", PROBE, "icmp", lab.stack.ip(SRC), "--timeout", "1"]
        sent = time.time()
        result = lab.stack.runner.run(argv, netns=lab.stack.vm(DST)["netns"], check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        deadline = time.monotonic() + 10
        hit = before
        while time.monotonic() < deadline:
            hits = client.receive_type("rule-hits", timeout=10)
            hit = next(r for r in hits["rules"] if r["rule_id"] == icmp_rule)
            rose = hit["packets"] > before["packets"]
            if rose and (hit["last_hit_at"] or 0) >= sent - 0.5:
                break
        assert hit["packets"] == before["packets"] + 1, (before, hit)
        assert hit["last_hit_at"] >= sent - 0.5, (sent, hit)
    finally:
        client.close()


def test_an_ipv6_ping_without_an_ipv6_rule_is_dropped_and_the_kernel_agrees(lab: LiveLab) -> None:
    trace = lab.trace(protocol="ipv6-icmp")
    assert trace["family"] == 6 and trace["destination_address"] == lab.stack.ip(DST, 6)
    assert trace["static"]["verdict"] == "DROP" and trace["static"]["reason"] == "default-drop"
    assert trace["kernel"]["kernel_verdict"] == "DROP", trace["kernel"]
    assert trace["kernel"]["agrees"] is True
    assert lab.trace_rules_left() == ""
    saved = lab.stack.runner.run(["ip6tables-save", "-t", "raw"], netns=lab.stack.host_of(SRC))
    assert "TRACE" not in saved.stdout
