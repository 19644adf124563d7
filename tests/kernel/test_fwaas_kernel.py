"""FWaaS v2 on a real router namespace: real packets across a router prove every verdict (issue 16).

Three namespaces: web (192.0.2.5, 2001:db8:1::5), app (198.51.100.10 and .11, 2001:db8:2::5)
and the router, joined by veths named like Neutron's router interfaces (qr-…), forwarding on.
The firewall is the worked example of tests/firewall/fwaas/example.py.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from sgweb.firewall.fwaas.compiler import (
    CompiledFamily,
    CompiledRouter,
    compile_router,
)
from sgweb.firewall.fwaas.model import FirewallPolicy, RouterState
from sgweb.firewall.fwaas.trace import ACCEPT, DROP, REJECTED, trace_router
from sgweb.firewall.trace.packet import Packet
from sgweb.kernel import probe as probe_module
from sgweb.kernel.router import RouterFirewall
from sgweb.kernel.runner import ProcessHandle, SubprocessRunner
from sgweb.kernel.traffic import _wait_for_listener
from tests.firewall.fwaas.example import (
    APP,
    APP_GROUP_OBJ,
    PROD_EGRESS,
    STATE,
    WEB,
    WEB_GROUP_OBJ,
)

pytestmark = pytest.mark.kernel

WEB_IP, WEB_IP6 = "192.0.2.5", "2001:db8:1::5"
DB_IP, OTHER_APP_IP, APP_IP6 = "198.51.100.10", "198.51.100.11", "2001:db8:2::5"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str | None
    seconds: float

    @property
    def verdict(self) -> str:
        if self.ok:
            return ACCEPT
        return REJECTED if self.error == "ConnectionRefusedError" else DROP


@dataclass
class RouterLab:
    runner: SubprocessRunner
    router: str
    web: str
    app: str

    def probe(self, netns: str, *args: str, timeout: float = 0.5) -> Outcome:
        argv = [sys.executable, "-I", probe_module.__file__, *args, "--timeout", str(timeout)]
        started = time.monotonic()
        result = self.runner.run(argv, netns=netns, check=False, timeout=timeout + 10)
        elapsed = time.monotonic() - started
        assert result.returncode in (0, 1), result.stderr
        answer = json.loads(result.stdout)
        return Outcome(bool(answer["ok"]), answer.get("error"), elapsed)

    def ping(self, netns: str, dst: str) -> Outcome:
        return self.probe(netns, "icmp", dst)

    def connect(self, netns: str, dst: str, port: int) -> Outcome:
        return self.probe(netns, "tcp", dst, "--port", str(port))

    def listen(self, netns: str, port: int) -> ProcessHandle:
        argv = [sys.executable, "-I", probe_module.__file__, "listen", "tcp", "--port", str(port)]
        handle = self.runner.spawn(argv, netns=netns)
        _wait_for_listener(self.runner, netns, "tcp", port)
        return handle

    @property
    def firewall(self) -> RouterFirewall:
        return RouterFirewall(self.runner, self.router)


NO_DAD = ["net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]


def _namespace(runner: SubprocessRunner, netns: str) -> None:
    """A namespace with loopback up whose IPv6 addresses (link-local too) are usable at once:
    a tentative link-local address cannot send neighbour solicitations for ~2 s."""
    runner.run(["ip", "netns", "add", netns])
    runner.run(["ip", "link", "set", "lo", "up"], netns=netns)
    runner.run(["sysctl", "-q", "-w", *NO_DAD], netns=netns)


def _endpoint(runner: SubprocessRunner, router: str, netns: str, device: str, addrs, gw, gw6):  # type: ignore[no-untyped-def]
    _namespace(runner, netns)
    runner.run(
        ["ip", "link", "add", device, "type", "veth", "peer", "name", "eth0", "netns", netns],
        netns=router,
    )
    for address in addrs:
        extra = ["nodad"] if ":" in address else []
        runner.run(["ip", "addr", "add", address, "dev", "eth0", *extra], netns=netns)
    runner.run(["ip", "link", "set", "eth0", "up"], netns=netns)
    runner.run(["ip", "route", "add", "default", "via", gw], netns=netns)
    runner.run(["ip", "-6", "route", "add", "default", "via", gw6], netns=netns)


@pytest.fixture
def lab(kernel_runner: SubprocessRunner, netns_prefix: str) -> Iterator[RouterLab]:
    router, web, app = (netns_prefix + label for label in ("qrouter", "web", "app"))
    runner = kernel_runner
    _namespace(runner, router)
    runner.run(
        ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"],
        netns=router,
    )
    _endpoint(runner, router, web, WEB.device, [f"{WEB_IP}/24", f"{WEB_IP6}/64"],
              "192.0.2.1", "2001:db8:1::1")  # fmt: skip
    _endpoint(runner, router, app, APP.device,
              [f"{DB_IP}/24", f"{OTHER_APP_IP}/24", f"{APP_IP6}/64"],
              "198.51.100.1", "2001:db8:2::1")  # fmt: skip
    for device, v4, v6 in (
        (WEB.device, "192.0.2.1/24", "2001:db8:1::1/64"),
        (APP.device, "198.51.100.1/24", "2001:db8:2::1/64"),
    ):
        runner.run(["ip", "addr", "add", v4, "dev", device], netns=router)
        runner.run(["ip", "addr", "add", v6, "dev", device, "nodad"], netns=router)
        runner.run(["ip", "link", "set", device, "up"], netns=router)
    built = RouterLab(runner, router, web, app)
    # Neighbour discovery first (IPv6's takes a few hundred ms): a verdict test's one-packet
    # probe must not lose its packet to an unresolved neighbour.
    for source, destination in ((web, APP_IP6), (app, WEB_IP6), (web, DB_IP), (app, WEB_IP)):
        deadline = time.monotonic() + 5
        while not built.ping(source, destination).ok:
            assert time.monotonic() < deadline, f"no route {source} -> {destination}"
    yield built
    # netns_prefix removes the namespaces, also when the test failed


def _apply(lab: RouterLab, state: RouterState, previous: CompiledRouter | None = None):  # type: ignore[no-untyped-def]
    compiled = compile_router(state)
    lab.firewall.apply(compiled, previous).raise_for_error()
    return compiled


def test_without_a_firewall_group_the_router_forwards_everything(lab: RouterLab) -> None:
    _apply(lab, RouterState(router=STATE.router))
    assert lab.ping(lab.web, DB_IP).ok
    assert lab.ping(lab.app, WEB_IP).ok
    assert lab.ping(lab.web, APP_IP6).ok


def test_allow_deny_reject_in_policy_order_and_the_default_drop(lab: RouterLab) -> None:
    compiled = _apply(lab, STATE)
    assert lab.firewall.drift(compiled) == []
    listener = lab.listen(lab.app, 5432)
    ssh = lab.listen(lab.app, 22)
    other = lab.listen(lab.app, 8080)
    try:
        assert lab.ping(lab.web, OTHER_APP_IP).ok  # allow-icmp, position 1
        assert lab.connect(lab.web, OTHER_APP_IP, 5432).ok  # allow-db, position 6
        denied = lab.connect(lab.web, DB_IP, 5432)  # deny-db (3) comes before allow-db (6)
        assert denied.verdict == DROP and denied.error == "TimeoutError"
        rejected = lab.connect(lab.web, OTHER_APP_IP, 22)  # reject-ssh: refused at once
        assert rejected.verdict == REJECTED and rejected.seconds < 0.4
        assert lab.connect(lab.web, OTHER_APP_IP, 8080).verdict == DROP  # no rule: default drop
        assert not lab.ping(lab.app, WEB_IP).ok  # web-fw has no ingress policy
    finally:
        for handle in (listener, ssh, other):
            handle.stop()
    hits = {
        (hit.origin.rule_name, hit.chain): hit.counter.packets
        for hit in lab.firewall.rule_hits(compiled)
    }
    by_rule: dict[str, int] = {}
    for (name, _chain), packets in hits.items():
        by_rule[name] = by_rule.get(name, 0) + packets
    assert by_rule["allow-icmp"] == 1
    assert by_rule["deny-db"] >= 1
    assert by_rule["reject-ssh"] == 1
    assert by_rule["allow-db"] == 1


def test_ipv6_goes_through_its_own_chains(lab: RouterLab) -> None:
    _apply(lab, STATE)
    listener = lab.listen(lab.app, 80)
    try:
        assert lab.ping(lab.web, APP_IP6).ok  # allow-v6-ping
        assert lab.connect(lab.web, APP_IP6, 80).verdict == DROP  # IPv4's allow-http is not v6
    finally:
        listener.stop()


def test_a_group_that_is_down_forwards_nothing_through_its_ports(lab: RouterLab) -> None:
    down = replace(WEB_GROUP_OBJ, admin_state_up=False)
    _apply(lab, replace(STATE, firewall_groups=(APP_GROUP_OBJ, down)))
    assert not lab.ping(lab.web, OTHER_APP_IP).ok


def test_an_incremental_change_rewrites_only_the_changed_chain_and_keeps_other_counters(
    lab: RouterLab,
) -> None:
    first = _apply(lab, STATE)
    assert lab.ping(lab.web, OTHER_APP_IP).ok
    without_deny = replace(
        PROD_EGRESS, rules=tuple(r for r in PROD_EGRESS.rules if r.id != "r-deny-db")
    )
    state = replace(
        STATE, firewall_groups=(APP_GROUP_OBJ, replace(WEB_GROUP_OBJ, egress_policy=without_deny))
    )
    listener = lab.listen(lab.app, 5432)
    try:
        assert lab.connect(lab.web, DB_IP, 5432).verdict == DROP
        second = _apply(lab, state, previous=first)
        assert lab.firewall.drift(second) == []
        assert lab.connect(lab.web, DB_IP, 5432).ok
    finally:
        listener.stop()
    # deny-db went by one in-place delete: allow-icmp's ping of before is still counted.
    hits = {hit.origin.rule_name: hit.counter.packets for hit in lab.firewall.rule_hits(second)}
    assert hits["allow-icmp"] >= 1
    assert hits["allow-db"] >= 1


def test_drift_is_found_and_a_full_apply_repairs_it_keeping_counters(lab: RouterLab) -> None:
    compiled = _apply(lab, STATE)
    assert lab.ping(lab.web, OTHER_APP_IP).ok
    # Someone deletes deny-db by hand: the kernel now lets .10:5432 through.
    lab.runner.run(["iptables", "-D", "neutron-l3-agent-ov4fa11ed00", "5"], netns=lab.router)
    assert lab.firewall.drift(compiled) == [(4, "neutron-l3-agent-ov4fa11ed00")]
    lab.firewall.apply(compiled).raise_for_error()  # a full apply, as the agent repairs
    assert lab.firewall.drift(compiled) == []
    hits = {hit.origin.rule_name: hit.counter.packets for hit in lab.firewall.rule_hits(compiled)}
    assert hits["allow-icmp"] == 1  # carried over the full restore


def test_a_failed_ipv6_apply_puts_ipv4_back(lab: RouterLab) -> None:
    good = _apply(lab, STATE)
    open_policy = FirewallPolicy(id="p-open", name="open", rules=())
    changed = compile_router(
        replace(
            STATE,
            firewall_groups=(APP_GROUP_OBJ, replace(WEB_GROUP_OBJ, egress_policy=open_policy)),
        )
    )
    v6 = changed.family(6)
    broken_v6 = CompiledFamily(
        6, (*v6.chains, ("neutron-l3-agent-broken", ("-p tcp --bogus 1 -j DROP",))), v6.jumps, {}
    )
    broken = replace(changed, families=(changed.family(4), broken_v6))
    report = lab.firewall.apply(broken, previous=good)
    assert not report.ok and report.failed_step == "iptables.6"
    assert report.rolled_back
    assert report.offending_line is not None and "--bogus" in report.offending_line
    assert lab.firewall.drift(good) == []
    assert lab.ping(lab.web, OTHER_APP_IP).ok  # the old allow-icmp is still in force


PROBES = [
    ("icmp", WEB_IP, DB_IP, None),
    ("icmp", WEB_IP, OTHER_APP_IP, None),
    ("tcp", WEB_IP, DB_IP, 5432),
    ("tcp", WEB_IP, OTHER_APP_IP, 5432),
    ("tcp", WEB_IP, DB_IP, 80),
    ("tcp", WEB_IP, OTHER_APP_IP, 22),
    ("tcp", WEB_IP, OTHER_APP_IP, 8080),
    ("icmp", OTHER_APP_IP, WEB_IP, None),
    ("tcp", DB_IP, WEB_IP, 80),
    ("icmp", WEB_IP6, APP_IP6, None),
    ("tcp", WEB_IP6, APP_IP6, 80),
    ("tcp", APP_IP6, WEB_IP6, 80),
]


def test_the_tracer_agrees_with_the_kernel_on_every_probe(lab: RouterLab) -> None:
    _apply(lab, STATE)
    ports = sorted({port for _p, _s, _d, port in PROBES if port})
    listeners = [lab.listen(ns, port) for ns in (lab.app, lab.web) for port in ports]
    try:
        for protocol, src, dst, port in PROBES:
            netns = lab.web if src in (WEB_IP, WEB_IP6) else lab.app
            if protocol == "icmp":
                outcome = lab.probe(netns, "icmp", dst, "--src", src)
                packet = Packet(
                    src=src, dst=dst, protocol="icmp" if ":" not in src else "ipv6-icmp"
                )
            else:
                outcome = lab.probe(netns, "tcp", dst, "--port", str(port), "--src", src)
                packet = Packet(src=src, dst=dst, protocol="tcp", sport=40000, dport=port)
            traced = trace_router(STATE, packet)
            # A dropped ping and a rejected one both fail; ICMP rejects are not in this batch.
            assert traced.verdict == outcome.verdict, (protocol, src, dst, port, traced.words)
    finally:
        for handle in listeners:
            handle.stop()
