"""FWaaS v2 on a real router namespace: real packets across a router prove every verdict (issue 16).

Three namespaces: web (192.0.2.5, 2001:db8:1::5), app (198.51.100.10 and .11, 2001:db8:2::5)
and the router, joined by veths named like Neutron's router interfaces (qr-…), forwarding on.
The firewall is the worked example of tests/firewall/fwaas/example.py.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from sgweb.firewall.fwaas.compiler import (
    CompiledFamily,
    CompiledRouter,
    compile_router,
)
from sgweb.firewall.fwaas.model import FirewallPolicy, FirewallRule, RouterState
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
    unreachable: bool  # the sender's kernel received an ICMP(v6) destination unreachable

    @property
    def verdict(self) -> str:
        """A reject is proven by the sender's own ICMP counters, not by connect()'s error:
        in namespaces on one host the unreachable can arrive while connect() still holds the
        socket lock, and TCP then only keeps it as a soft error (TcpExtLockDroppedIcmps) and
        times out, although the sender did see the reject."""
        if self.ok:
            return ACCEPT
        return REJECTED if self.unreachable or self.error == "ConnectionRefusedError" else DROP


@dataclass
class RouterLab:
    runner: SubprocessRunner
    router: str
    web: str
    app: str

    def probe(self, netns: str, *args: str, timeout: float = 0.5) -> Outcome:
        argv = [sys.executable, "-I", probe_module.__file__, *args, "--timeout", str(timeout)]
        before = self.unreachables(netns)
        started = time.monotonic()
        result = self.runner.run(argv, netns=netns, check=False, timeout=timeout + 10)
        elapsed = time.monotonic() - started
        assert result.returncode in (0, 1), result.stderr
        answer = json.loads(result.stdout)
        unreachable = self.unreachables(netns) > before
        return Outcome(bool(answer["ok"]), answer.get("error"), elapsed, unreachable)

    def unreachables(self, netns: str) -> int:
        """ICMP and ICMPv6 destination-unreachable messages this namespace has received."""
        total = 0
        snmp = self.runner.run(["cat", "/proc/net/snmp"], netns=netns).stdout.splitlines()
        icmp = [line.split()[1:] for line in snmp if line.startswith("Icmp:")]
        if len(icmp) == 2:
            total += int(dict(zip(icmp[0], icmp[1], strict=True))["InDestUnreachs"])
        for line in self.runner.run(["cat", "/proc/net/snmp6"], netns=netns).stdout.splitlines():
            name, _, value = line.partition(" ")
            if name == "Icmp6InDestUnreachs":
                total += int(value.strip())
        return total

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
    # No ICMP error rate limit: a burst of rejected probes must each see their unreachable
    # (IPv6's limit is one error per second per destination; the verdict tests send more).
    forwarding = ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]
    no_limit = ["net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0"]
    runner.run(["sysctl", "-q", "-w", *forwarding, *no_limit], netns=router)
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
        rejected = lab.connect(lab.web, OTHER_APP_IP, 22)  # reject-ssh: an unreachable back
        assert rejected.verdict == REJECTED and not denied.unreachable
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
    reject_v6 = FirewallRule(id="r6", name="reject-v6-ssh", ip_version=6, protocol="tcp",
                             destination_port="22", action="reject")  # fmt: skip
    policy = replace(PROD_EGRESS, rules=(*PROD_EGRESS.rules, reject_v6))
    _apply(lab, replace(STATE, firewall_groups=(replace(WEB_GROUP_OBJ, egress_policy=policy),)))
    listeners = [lab.listen(lab.app, 80), lab.listen(lab.app, 22)]
    try:
        assert lab.ping(lab.web, APP_IP6).ok  # allow-v6-ping
        assert lab.connect(lab.web, APP_IP6, 80).verdict == DROP  # IPv4's allow-http is not v6
        assert lab.connect(lab.web, APP_IP6, 22).verdict == REJECTED  # icmp6-port-unreachable
    finally:
        for handle in listeners:
            handle.stop()


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


def test_a_new_deny_cuts_established_connections_it_denies_and_keeps_the_others(
    lab: RouterLab,
) -> None:
    first = _apply(lab, STATE)
    server = lab.runner.spawn(
        [sys.executable, "-I", probe_module.__file__, "listen", "tcp", "--port", "5432", "--echo"],
        netns=lab.app,
    )
    _wait_for_listener(lab.runner, lab.app, "tcp", 5432)
    http = lab.listen(lab.app, 80)
    argv = [sys.executable, "-I", probe_module.__file__, "stream", OTHER_APP_IP, "--port", "5432",
            "--interval", "0.05"]  # fmt: skip
    stream = lab.runner.spawn(argv, netns=lab.web)
    try:
        stream.wait_for_output('"seq": 3', timeout=5)
        # allow-db goes: new connections to 5432 fall to the default drop.
        rules = tuple(r for r in PROD_EGRESS.rules if r.id != "r-db")
        web_group = replace(WEB_GROUP_OBJ, egress_policy=replace(PROD_EGRESS, rules=rules))
        state = replace(STATE, firewall_groups=(APP_GROUP_OBJ, web_group))
        _apply(lab, state, previous=first)
        assert lab.connect(lab.web, OTHER_APP_IP, 5432).verdict == DROP
        time.sleep(0.3)
        assert _last_ok(stream) is True  # established: still allowed until cut
        assert lab.connect(lab.web, OTHER_APP_IP, 80).ok
        # Read and cut over ctnetlink in the router's namespace: no process at all.
        watched = _Recording(lab.runner)
        cut = RouterFirewall(watched, lab.router).cut_denied_connections(state)  # type: ignore[arg-type]
        assert [(f.protocol, f.dst, f.dport) for f in cut] == [("tcp", OTHER_APP_IP, 5432)]
        assert watched.argvs == []
        time.sleep(0.6)
        assert _last_ok(stream) is False
    finally:
        for handle in (stream, server, http):
            handle.stop()


def test_a_running_ping_stops_when_a_deny_rule_is_put_first_and_its_flow_cut(
    lab: RouterLab,
) -> None:
    first = _apply(lab, STATE)
    deny_ping = FirewallRule(id="r-no-ping", name="no-ping", protocol="icmp", action="deny")
    rules = (deny_ping, *PROD_EGRESS.rules)
    web_group = replace(WEB_GROUP_OBJ, egress_policy=replace(PROD_EGRESS, rules=rules))
    state = replace(STATE, firewall_groups=(APP_GROUP_OBJ, web_group))
    # One identifier for all requests: one conntrack flow, like `ping`.
    argv = [sys.executable, "-I", probe_module.__file__, "icmp", OTHER_APP_IP, "--count", "25",
            "--timeout", "0.2"]  # fmt: skip
    ping = lab.runner.spawn(argv, netns=lab.web)
    try:
        time.sleep(0.5)
        _apply(lab, state, previous=first)
        cut = lab.firewall.cut_denied_connections(state)
        assert [(flow.protocol, flow.dst) for flow in cut] == [("icmp", OTHER_APP_IP)]
    finally:
        result = ping.stop(timeout=30) if ping.poll() is not None else _wait(ping)
    answered = json.loads(result.stdout)["answered"]
    assert answered[0] is True and answered[-1] is False
    trace = trace_router(state, Packet(src=WEB_IP, dst=OTHER_APP_IP, protocol="icmp"))
    assert trace.words.startswith(
        "dropped by firewall rule no-ping (policy prod-egress, position 1)"
    )


class _Recording:
    """A runner that runs for real and remembers every command it was given."""

    def __init__(self, runner: SubprocessRunner) -> None:
        self.runner = runner
        self.argvs: list[list[str]] = []

    def run(self, argv: list[str], **kwargs: Any):  # type: ignore[no-untyped-def]
        self.argvs.append(list(argv))
        return self.runner.run(argv, **kwargs)


def _wait(handle: ProcessHandle, seconds: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while handle.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return handle.stop()


def _last_ok(stream: ProcessHandle) -> bool | None:
    stdout, _stderr = stream.read_output()
    tries = [json.loads(line) for line in stdout.splitlines() if '"seq"' in line]
    return tries[-1]["ok"] if tries else None


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


PROBE_PORTS = (22, 80, 85, 5432)
V4 = {"web": (WEB_IP, "192.0.2.0/24"), "app": (OTHER_APP_IP, "198.51.100.0/24")}
V6 = {"web": (WEB_IP6, "2001:db8:1::/64"), "app": (APP_IP6, "2001:db8:2::/64")}


def random_policy(rng: random.Random, name: str) -> FirewallPolicy:
    rules = []
    for index in range(rng.randint(3, 9)):
        family = rng.choice((4, 4, 6))
        table = V4 if family == 4 else V6
        protocol = rng.choice(("tcp", "tcp", "icmp", "udp", None))
        addresses = [None, None, None, None, *(cidr for _ip, cidr in table.values()),
                     *(ip for ip, _cidr in table.values())]  # fmt: skip
        port = rng.choice((None, "22", "80", "80:90", "5432")) if protocol == "tcp" else None
        rules.append(
            FirewallRule(
                id=f"{name}-{index}",
                name=f"{name}-{index}",
                protocol=protocol,
                ip_version=family,
                source_ip_address=rng.choice(addresses),
                destination_ip_address=rng.choice(addresses),
                destination_port=port,
                action=rng.choice(("allow", "allow", "deny", "reject")),
                enabled=rng.random() > 0.1,
            )
        )
    return FirewallPolicy(id=f"p-{name}", name=name, rules=tuple(rules))


def random_state(rng: random.Random) -> RouterState:
    groups = []
    for group, port in ((WEB_GROUP_OBJ, WEB.port_id), (APP_GROUP_OBJ, APP.port_id)):
        if rng.random() < 0.2:
            continue  # this interface has no firewall group
        groups.append(
            replace(
                group,
                ingress_policy=random_policy(rng, f"{group.name}-in")
                if rng.random() < 0.8
                else None,
                egress_policy=random_policy(rng, f"{group.name}-out")
                if rng.random() < 0.8
                else None,
                ports=(port,),
                admin_state_up=rng.random() > 0.1,
            )
        )
    return replace(STATE, firewall_groups=tuple(groups))


# Seeds picked (by the tracer alone) for a mix of allow, deny, reject and default drops.
@pytest.mark.parametrize("seed", [19, 47, 5])
def test_random_policies_the_tracer_agrees_with_the_kernel(lab: RouterLab, seed: int) -> None:
    rng = random.Random(seed)
    state = random_state(rng)
    _apply(lab, state)
    listeners = [lab.listen(ns, port) for ns in (lab.app, lab.web) for port in PROBE_PORTS]
    disagreements = []
    try:
        for table in (V4, V6):
            for source, destination in (("web", "app"), ("app", "web")):
                src, dst = table[source][0], table[destination][0]
                netns = lab.web if source == "web" else lab.app
                icmp = "icmp" if table is V4 else "ipv6-icmp"
                outcome = lab.probe(netns, "icmp", dst, "--src", src)
                traced = trace_router(state, Packet(src=src, dst=dst, protocol=icmp))
                if traced.verdict != outcome.verdict:
                    disagreements.append((icmp, src, dst, traced.words, outcome))
                for port in PROBE_PORTS:
                    outcome = lab.probe(netns, "tcp", dst, "--port", str(port), "--src", src)
                    packet = Packet(src=src, dst=dst, protocol="tcp", sport=40000, dport=port)
                    traced = trace_router(state, packet)
                    if traced.verdict != outcome.verdict:
                        disagreements.append((port, src, dst, traced.words, outcome))
    finally:
        for handle in listeners:
            handle.stop()
    assert disagreements == []
