"""`python -m bench.fanout --hosts 100 --ports 100`: one rule change to a group on every host.

A throwaway test database holds `--hosts` hosts with `--ports` ports each, all in one group that
admits its own members (Neutron's default group), so every host's state names the group and
all its members (hosts x ports addresses). A private redis-server (its own port, removed at the
end) carries the states and the nudges (one PUBLISH per host on its channel); a listener
subscribed to every host's channel (one pattern) notes when each host's nudge arrives. The
change is the real action (`create_security_group_rule`), published inline by the real
dispatcher hook (`SGWEB_PUBLISH_INLINE_HOSTS` raised so no control worker is needed); the
control side's wall and CPU time are measured around it, and Redis bytes written are Redis's
own count of bytes received (INFO total_net_input_bytes) over the window; FANOUT_BYTES=1 also
tallies the control side's commands by kind of key (`bench.redisbytes`). The keys have the
deployment's default prefix (``sgweb``, `--prefix`): key names are in every command's bytes.

Then each simulated agent does what a real one does on its nudge, without a kernel: fetch the
manifest and the pieces it lacks (its own RedisStore and piece cache, warmed by the state before
the change), assemble, compile with its own CompileCache (warm from compiling the state before),
diff both ways (delta and rollback). Those run one after another in this process (a fleet runs
them in parallel, one per host), so a host "has" the change at
    (its nudge arrived, counted from the change's start) + (its own fetch-compile-diff time);
the kernel apply is not in it.
Prints JSON: p50 / p95 / max of that, the control plane's wall and CPU time, Redis bytes.
Also: membership changes (one address joins the group, 21 times) compiled and diffed on one
agent as the agent does it (the compile cache and the previous compile its own, the delta and
the rollback): their times and that a delta is ipset add/del lines only.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import ipaddress
import json
import os
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from typing import Any

from bench.djangosetup import setup
from bench.redisbytes import tallied

setup()

import redis  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.test.utils import override_settings, setup_databases, teardown_databases  # noqa: E402

from sgweb.firewall import manifest  # noqa: E402
from sgweb.firewall.compiler import CompileCache, compile_host  # noqa: E402
from sgweb.firewall.incremental import diff  # noqa: E402
from sgweb.hostsync import publish  # noqa: E402
from sgweb.hostsync.channel import SyncChannel, use_channel  # noqa: E402
from sgweb.networks.models import FixedIP, Host, Network, Port, PortSecurityGroup, Subnet  # noqa: E402
from sgweb.security import actions  # noqa: E402
from sgweb.security.models import SecurityGroup, SecurityGroupRule  # noqa: E402
from sgweb.tenancy.choices import Role  # noqa: E402
from sgweb.tenancy.models import Profile, Project, Quota  # noqa: E402
from sgweb.wire.sync import DEFAULT_KEY_PREFIX  # noqa: E402
from worker.store import RedisStore  # noqa: E402


def _say(what: str) -> None:
    """Progress on stderr: a thousand-host run takes minutes on a busy machine."""
    print(f"{time.strftime('%H:%M:%S')} {what}", file=sys.stderr, flush=True)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class PrivateRedis:
    """A redis-server of our own: the bench writes megabytes and counts bytes received."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="sgweb-fanout-redis-")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        self.client = client

    def bytes_in(self) -> int:
        return int(self.client.info("stats")["total_net_input_bytes"])

    def close(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def load(hosts: int, ports: int) -> tuple[User, SecurityGroup, list[str]]:
    admin = User.objects.create_user("bench-admin")
    Profile.objects.create(user=admin, role=Role.ADMIN)
    project = Project.objects.create(name="bench")
    Quota.objects.create(project=project, security_groups=-1, security_group_rules=-1)
    group = SecurityGroup.objects.create(project=project, name="default", description="bench")
    SecurityGroupRule.objects.bulk_create(
        [
            SecurityGroupRule(security_group=group, project=project, direction="ingress",
                              ethertype="IPv4", remote_group=group),
            SecurityGroupRule(security_group=group, project=project, direction="egress",
                              ethertype="IPv4"),
            SecurityGroupRule(security_group=group, project=project, direction="egress",
                              ethertype="IPv6"),
        ]
    )  # fmt: skip
    host_rows = Host.objects.bulk_create(Host(name=f"bench-{i:04d}") for i in range(hosts))
    network = Network.objects.create(project=project, name="bench-net")
    cidr = ipaddress.ip_network("100.64.0.0/10")
    subnet = Subnet.objects.create(
        network=network, project=project, name="bench-v4", ip_version=4, cidr=str(cidr),
        gateway_ip="100.64.0.1", dhcp_servers=["100.64.0.2"],
    )  # fmt: skip
    total = hosts * ports
    port_rows = Port.objects.bulk_create(
        (
            Port(
                project=project,
                network=network,
                name=f"port-{i:06d}",
                mac_address=f"fa:16:3e:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                host=host_rows[i % hosts],
                host_revision=0,
            )
            for i in range(total)
        ),
        batch_size=2000,
    )
    FixedIP.objects.bulk_create(
        (
            FixedIP(port=port, subnet=subnet, ip_address=str(cidr.network_address + 10 + i))
            for i, port in enumerate(port_rows)
        ),
        batch_size=2000,
    )
    PortSecurityGroup.objects.bulk_create(
        (PortSecurityGroup(port=port, security_group=group, position=0) for port in port_rows),
        batch_size=2000,
    )
    return admin, group, [host.name for host in host_rows]


class SimulatedAgent:
    """What a real agent keeps between changes: its store (piece cache), compile cache and the
    last compiled state. Decoded pieces are shared between the simulated agents of this
    process (`shared_decode`), else a thousand copies of the member list would not fit in
    memory; each agent still reads its missing pieces from Redis itself."""

    def __init__(self, url: str, host: str, prefix: str, decoded: dict[str, Any]) -> None:
        self.store = RedisStore(url, host, prefix)
        self.store.cache.decode = self._decode
        self.decoded = decoded
        self.cache = self._fresh_cache()
        self.compiled: Any = None
        self.revision = 0
        self.last_state: Any = None

    def _decode(self, kind: str, text: str | bytes, expected: str) -> Any:
        if expected not in self.decoded:
            self.decoded[expected] = manifest.decode_piece(kind, text, expected)
        return self.decoded[expected]

    def converge(self) -> dict[str, Any]:
        started = time.perf_counter()
        desired = self.store.fetch()
        assert desired is not None and desired.assembled is not None, "no assembled state"
        fetched = time.perf_counter()
        compiled = compile_host(desired.assembled, cache=self.cache)
        compiled_at = time.perf_counter()
        delta = diff(self.compiled, compiled)
        if self.compiled is not None:
            diff(compiled, self.compiled)  # the rollback the agent keeps
        done = time.perf_counter()
        self.compiled, self.revision = compiled, desired.revision
        self.last_state = desired.assembled
        return {
            "revision": desired.revision,
            "fetch_s": fetched - started,
            "compile_s": compiled_at - fetched,
            "diff_s": done - compiled_at,
            "total_s": done - started,
            "iptables_lines": sum(text.count("\n") for _, text in delta.iptables),
            "ipset_text": delta.ipsets.prepare + delta.ipsets.commit,
        }

    def forget_compiled(self) -> None:
        """Between changes, a real agent holds one host's compiled state; the bench would hold
        them all. Re-done (untimed) right before this host's turn (see `warm`)."""
        self.compiled = None
        self.cache = self._fresh_cache()

    def _fresh_cache(self) -> CompileCache:
        # The sorted members of the (shared, decoded once) member lists are shared too: every
        # real agent holds them sorted from its last compile; sorting 50,000 addresses again
        # for each simulated one would only make the run take an hour.
        cache = CompileCache()
        cache.sorted_members = self.decoded.setdefault("sorted members", {})
        return cache


def run(hosts: int, ports: int, prefix: str) -> dict[str, Any]:
    private = PrivateRedis()
    via = SyncChannel(redis_url=private.url, broker_url=private.url, prefix=prefix,
                      control_queue=f"control-{prefix}")  # fmt: skip
    out: dict[str, Any] = {"hosts": hosts, "ports_per_host": ports, "ports": hosts * ports}
    out["prefix"] = prefix
    try:
        loaded = time.perf_counter()
        _say(f"loading {hosts} hosts x {ports} ports")
        admin, group, names = load(hosts, ports)
        out["load_s"] = round(time.perf_counter() - loaded, 1)
        for name in names:  # heartbeats as live agents write them (the publish reads them)
            via.redis.set(via.keys(name).heartbeat, json.dumps({"applied_revision": 0}), ex=3600)
        with use_channel(via), override_settings(SGWEB_PUBLISH_INLINE_HOSTS=10**9,
                                                 SGWEB_PUBLISH_TO_HOSTS=True):  # fmt: skip
            _say("first publish (every host in full)")
            first = time.perf_counter()
            publish.publish_hosts(names, "bench: first publish", via=via)
            out["first_publish_s"] = round(time.perf_counter() - first, 2)
            decoded: dict[str, Any] = {}
            agents = {n: SimulatedAgent(private.url, n, prefix, decoded) for n in names}
            _say("agents read and compile the state before the change")
            for agent in agents.values():  # warm: pieces held, caches as after the last apply
                agent.converge()
                agent.forget_compiled()

            _say("the rule change")
            out["rule_change"] = _rule_change(admin, group, names, agents, private, via)
            out["membership_change"] = _membership_change(agents[names[0]], group)
    finally:
        private.close()
    return out


class NudgeClock(threading.Thread):
    """When each host's nudge arrived (perf_counter), from one pattern subscription."""

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()
        self.pubsub.psubscribe(f"{prefix}:host:*:nudge")
        while (m := self.pubsub.get_message(timeout=5)) is None or m["type"] != "psubscribe":
            pass
        self.arrived: dict[str, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            message = self.pubsub.get_message(timeout=0.1)
            if message and message["type"] == "pmessage":
                host = message["channel"].decode().split(":host:", 1)[1].rsplit(":", 1)[0]
                self.arrived.setdefault(host, time.perf_counter())

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
        self.pubsub.close()
        self.client.close()


def _rule_change(admin, group, names, agents, private, via) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    clock = NudgeClock(private.url, via.prefix)
    clock.start()
    before_bytes = private.bytes_in()
    profiler = cProfile.Profile() if os.environ.get("FANOUT_PROFILE") else None
    with tallied() if os.environ.get("FANOUT_BYTES") else nullcontext() as tally:
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        actions.create_security_group_rule(
            admin, group, direction="ingress", ethertype="IPv4", protocol="tcp",
            port_range_min=8443, port_range_max=8443,
        )  # fmt: skip
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        published_s = time.perf_counter() - wall
        control_cpu_s = time.process_time() - cpu
        control_bytes = private.bytes_in() - before_bytes
        by_kind = tally.report() if tally else None
    time.sleep(0.5)  # the listener takes the last nudges
    clock.stop()
    nudged = len(clock.arrived)
    assert nudged == len(names), f"{len(names) - nudged} hosts were not nudged"
    latencies, totals, fetched = [], [], 0
    for name in names:
        agent = agents[name]
        revision = agent.revision
        # Its compiled state before the change (what its memory holds), rebuilt untimed from
        # the pieces of the previous revision still in its cache.
        agent.compiled = compile_host(_previous_state(agent), cache=agent.cache)
        pieces_before = agent.store.cache.fetched
        result = agent.converge()
        fetched += agent.store.cache.fetched - pieces_before
        assert result["revision"] > revision, f"{name} did not get a new revision"
        latencies.append(clock.arrived[name] - wall + result["total_s"])
        totals.append(result["total_s"])
        agent.forget_compiled()
    agent_bytes = private.bytes_in() - before_bytes - control_bytes
    result = {
        "hosts_with_it_p50_s": round(_percentile(latencies, 0.5), 3),
        "hosts_with_it_p95_s": round(_percentile(latencies, 0.95), 3),
        "hosts_with_it_max_s": round(max(latencies), 3),
        "control_publish_wall_s": round(published_s, 3),
        "control_cpu_s": round(control_cpu_s, 3),
        "redis_bytes_written_by_control": control_bytes,
        "redis_bytes_sent_by_agents_reading": agent_bytes,
        "hosts_nudged": nudged,
        "nudges_arrived_p50_s": round(
            statistics.median(t - wall for t in clock.arrived.values()), 3
        ),
        "nudges_arrived_max_s": round(max(clock.arrived.values()) - wall, 3),
        "agent_fetch_compile_diff_ms_p50": round(statistics.median(totals) * 1000, 2),
        "agent_fetch_compile_diff_ms_max": round(max(totals) * 1000, 2),
        "pieces_fetched_per_agent": round(fetched / len(names), 2),
    }
    if by_kind is not None:  # FANOUT_BYTES=1: the control side's bytes by command and key kind
        result["redis_bytes_by_kind_control"] = by_kind
    return result


def _previous_state(agent: SimulatedAgent) -> Any:
    """The state the agent applied last (kept as objects; its compiled form is rebuilt)."""
    return agent.last_state


def _membership_change(agent: SimulatedAgent, group: SecurityGroup) -> dict[str, Any]:
    """Addresses join the group's member set one after another, as a long-lived agent takes
    them: its own compile cache and previous compile, then compile, delta and rollback. The
    first join also builds what the later ones reuse (the members' counts, `memberedit`); it
    is shown apart. Under load a 1 ms step often waits for a CPU: the minimum is shown too."""
    desired = agent.store.fetch()
    assert desired is not None and desired.assembled is not None
    state = desired.assembled
    gid = str(group.id)
    members = dict(state.remote_group_members)[gid]
    cache = CompileCache()
    before = compile_host(state, cache=cache)
    compiles, diffs = [], []
    delta = None
    for i in range(21):
        members = tuple(sorted((*members, f"100.127.255.{i + 1}")))
        after_state = dataclasses.replace(
            state,
            remote_group_members=tuple(
                (g, members if g == gid else m) for g, m in state.remote_group_members
            ),
        )
        started = time.perf_counter()
        after = compile_host(after_state, cache=cache)
        compiled = time.perf_counter()
        delta = diff(before, after)
        diff(after, before)  # the rollback the agent keeps
        compiles.append(compiled - started)
        diffs.append(time.perf_counter() - compiled)
        before = after
    assert delta is not None
    lines = (delta.ipsets.prepare + delta.ipsets.commit).splitlines()
    return {
        "members": len(members),
        "first_join_compile_ms": round(compiles[0] * 1000, 3),
        "compile_ms_p50": round(statistics.median(compiles[1:]) * 1000, 3),
        "compile_ms_min": round(min(compiles[1:]) * 1000, 3),
        "delta_and_rollback_ms_p50": round(statistics.median(diffs[1:]) * 1000, 3),
        "iptables_lines": sum(text.count("\n") for _, text in delta.iptables),
        "ipset_lines": lines,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--ports", type=int, default=100, help="ports per host")
    # The Redis is the bench's own, so the deployment's default prefix collides with nothing
    # and the bytes are those a default deployment sends (its key names are in every command).
    parser.add_argument("--prefix", default=DEFAULT_KEY_PREFIX, help="Redis key prefix")
    args = parser.parse_args(argv)
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        result = run(args.hosts, args.ports, args.prefix)
    finally:
        teardown_databases(old_config, verbosity=0)
    with open("/proc/loadavg") as loadavg:
        result["loadavg"] = loadavg.read().split()[:3]
    result["pid"] = os.getpid()
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
