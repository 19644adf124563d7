"""`python -m bench.live` : live counters, static verdicts.

Builds a scratch host namespace (`sgwv-<hex>-host`, a shared bridge with two VMs whose ports are
the scenario's first two) and applies an N-port scenario's rules to it (default 1000 ports);
registers the ports in a scratch SQLite database; serves the websockets with a real daphne; runs
the agent's counter thread (`worker.live.CounterStreamer`) against the namespace; connects W
watchers (default 50, one per port, raw websocket clients with a logged-in session, in a process
of their own like browsers: `bench.livewatchers`) and prints:

* the agent's CPU per published tick, per read and per watched port while W ports are watched
  (the thread's own CPU plus any `iptables -L` children), and the time one read takes (reads
  run four times a second, a tick goes out when a counter moved or a second passed);
* the time from a probe packet (VM 1 pings VM 2) leaving VM 1 to the watcher of VM 1's port
  receiving the changed counter, p50/p95 over several probes (and the same from starting the
  probe process, which adds a Python start in the VM's namespace);
* the static verdict of a flow between two ports of the N-port host (cached compiled host),
  p50/p95 over many runs, and the one-off compile.

Figures are printed as JSON; nothing is asserted. Every namespace, process, Redis key and file is
removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/13"
REPOSITORY = Path(__file__).resolve().parents[1]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _rounded_percentile(values: list[float], fraction: float) -> float | None:
    return round(_percentile(values, fraction), 3) if values else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def static_verdicts(state: Any, runs: int = 500) -> dict[str, Any]:
    from sgweb.firewall.trace.flow import HostTargetCache, trace_flow

    cache = HostTargetCache()
    started = time.perf_counter()
    target = cache.target("bench", state, revision=1)
    compile_s = time.perf_counter() - started
    a, b = state.ports[0].id, state.ports[1].id
    timings = []
    for index in range(runs):
        protocol, dport = (("tcp", 22), ("udp", 53), ("icmp", None))[index % 3]
        clock = time.perf_counter()
        flow = trace_flow(
            [cache.target("bench", state, revision=1)], a, b, protocol=protocol,
            dport=dport, sport=40000 if dport else None, family=4, reply=True,
        )  # fmt: skip
        timings.append((time.perf_counter() - clock) * 1000)
    assert target.index is not None and flow is not None
    return {
        "compile_and_prepare_s": round(compile_s, 3),
        "verdict_ms_p50": round(_percentile(timings, 0.5), 3),
        "verdict_ms_p95": round(_percentile(timings, 0.95), 3),
        "runs": runs,
    }


def _populate(state: Any, host: str) -> str:
    """Ports of the scenario in the scratch database (ids as in the kernel), an admin and a
    session; returns the session key."""
    import uuid

    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from sgweb.networks.models import Host, Network, Port
    from sgweb.tenancy.models import Project

    call_command("migrate", verbosity=0, skip_checks=True)
    project = Project.objects.create(name="bench")
    network = Network.objects.create(project=project, name="bench-net")
    bound = Host.objects.create(name=host)
    Port.objects.bulk_create(
        Port(id=uuid.UUID(port.id), project=project, network=network, name=f"p{index}",
             mac_address=port.mac_address, host=bound)
        for index, port in enumerate(state.ports)
    )  # fmt: skip
    user = get_user_model().objects.create_superuser("bench", password=secrets.token_hex(8))
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    return session.session_key


def _cpu_seconds() -> float:
    times = os.times()
    return times.children_user + times.children_system


class _Browsers:
    """The watchers, in a process of their own (`bench.livewatchers`); per watcher, the
    (monotonic arrival, total packets) of every counters message it received."""

    def __init__(self, port: int, port_ids: list[str], cookie: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.livewatchers", str(port), cookie, *port_ids],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPOSITORY,
        )  # fmt: skip
        self.messages: list[list[tuple[float, int]]] = [[] for _ in port_ids]
        self.walls: list[list[float]] = [[] for _ in port_ids]  # time.time() at arrival
        self.transit: list[float] = []  # agent publishes -> watcher receives, every message
        assert self.process.stdout is not None
        ready = self.process.stdout.readline()
        if not ready.startswith("ready"):
            raise RuntimeError(f"watchers did not start: {ready!r}")
        self.thread = threading.Thread(target=self._collect, daemon=True)
        self.thread.start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            index, arrived, total, transit, wall = line.split()
            self.walls[int(index)].append(float(wall))
            self.messages[int(index)].append((float(arrived), int(total)))
            self.transit.append(float(transit))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def live_counters(
    state: Any, watchers: int, probes: int, steady_s: float, keep: dict[str, Any]
) -> dict[str, Any]:
    from bench.agent import _Quiet, _Store
    from sgweb.firewall.compiler import compile_host
    from sgweb.kernel import topology as topo
    from sgweb.kernel.apply import HostFirewall
    from sgweb.kernel.runner import default_runner
    from worker.agent import Agent
    from worker.live import start as start_streamer

    runner = default_runner()
    prefix = keep["prefix"]
    first, second = state.ports[0], state.ports[1]

    def vm(label: str, port: Any) -> Any:
        addresses = tuple(f"{ip}/10" for ip in port.fixed_ips if ":" not in ip)
        return topo.VmSpec(label, port.id, port.mac_address, addresses, port.device)

    spec = topo.TopologySpec(
        prefix, (topo.HostSpec("host", (vm("vm1", first), vm("vm2", second))),)
    )
    keep["topology"] = topo.build(spec, runner)
    netns = prefix + "host"
    host = netns
    store = _Store()
    agent = Agent(host, store, HostFirewall(runner, netns), _Quiet(),
                  compile_fn=compile_host)  # fmt: skip
    store.publish(1, state)
    applied = agent.sync(1)
    assert applied.action == "applied", applied.report.get("error")
    session = keep["session"]
    import django

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    daphne_port = _free_port()
    keep["daphne"] = runner.spawn(
        ["env", *(f"{k}={v}" for k, v in env.items() if k.startswith(("SGWEB", "DATABASE",
         "REDIS", "CELERY", "DJANGO", "PYTHONPATH", "SECRET", "ALLOWED"))),
         sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(daphne_port),
         "sgweb.asgi:application"]
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", daphne_port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert django.VERSION
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    streamer = start_streamer(agent, REDIS_URL, keep["key_prefix"])
    keep["streamer"] = streamer
    if os.environ.get("SGWV_DEBUG"):
        print("counter reader:", type(streamer.reader).__name__, file=sys.stderr)
    cookie = f"sessionid={session}"
    started_connecting = time.perf_counter()
    browsers = _Browsers(
        daphne_port, [port.id for port in state.ports[: min(watchers, len(state.ports))]], cookie
    )
    keep["browsers"] = browsers
    clients = browsers.messages
    connect_s = time.perf_counter() - started_connecting
    time.sleep(3)  # every watch registered and read at least once
    # Steady state: nothing but the counter thread runs commands in this process now.
    cpu_before, ticks_before, read_before = _cpu_seconds(), streamer.ticks, streamer.read_s
    reads_before = streamer.reads
    thread_before = streamer.cpu_s
    received_before = [len(messages) for messages in clients]
    wall = time.monotonic()
    time.sleep(steady_s)
    elapsed = time.monotonic() - wall
    rates = [
        (len(messages) - before) / elapsed
        for messages, before in zip(clients, received_before, strict=True)
    ]
    ticks = streamer.ticks - ticks_before
    reads = streamer.reads - reads_before
    read_ms = (streamer.read_s - read_before) * 1000 / max(1, reads)
    transit_before = len(browsers.transit)
    children_s = _cpu_seconds() - cpu_before
    thread_s = streamer.cpu_s - thread_before
    cpu_per_tick = (children_s + thread_s) / max(1, ticks)
    watched = len(clients)
    # Latency: VM 1 pings VM 2; the watcher of VM 1's port sees its egress counters move.
    sensor = clients[0]
    sensor_walls = browsers.walls[0]
    latencies = []  # from the packet leaving VM 1 (the probe says when it sent it)
    with_spawn = []  # from starting the probe process (the figure before it said)
    for _ in range(probes):
        time.sleep(0.37 + 0.6 * secrets.randbelow(1000) / 1000)  # a random phase against ticks
        count = len(sensor)
        baseline = sensor[-1][1] if sensor else 0
        argv = [sys.executable, "-I", topo.PROBE_SCRIPT, "icmp",
                second.fixed_ips[0], "--timeout", "0.3"]  # fmt: skip
        sent = time.monotonic()
        probe = runner.run(argv, netns=prefix + "vm1", check=False, timeout=10)
        if os.environ.get("SGWV_DEBUG"):
            print("probe", probe.returncode, probe.stdout.strip(), baseline, file=sys.stderr)
        try:
            packet_at = float(json.loads(probe.stdout.strip().splitlines()[-1])["sent_at"])
        except (ValueError, KeyError, IndexError):
            packet_at = None
        deadline = sent + 5
        seen = None
        while time.monotonic() < deadline and seen is None:
            for offset, (arrived, total) in enumerate(sensor[count:]):
                if arrived >= sent and total > baseline:
                    seen = arrived - sent
                    wall = sensor_walls[count + offset]
                    if packet_at is not None:
                        latencies.append(wall - packet_at)
                    break
            time.sleep(0.005)
        if seen is not None:
            with_spawn.append(seen)
        elif os.environ.get("SGWV_DEBUG"):
            agent_side = streamer.last_message or {"chains": []}
            print("agent side", streamer.ticks, [(c["name"], len(c["rules"]),
                  sum(r["packets"] for r in c["rules"])) for c in agent_side["chains"]],
                  file=sys.stderr)  # fmt: skip
            print("unseen; last totals", sensor[-1][1] if sensor else None,
                  len(sensor) - count, file=sys.stderr)  # fmt: skip
    client.close()
    return {
        "ports_on_host": len(state.ports),
        "watchers": watched,
        "watched_chains": watched * 6,
        "websocket_connect_all_s": round(connect_s, 2),
        "ticks_in_steady_window": ticks,
        "steady_window_s": round(elapsed, 1),
        "reads_in_steady_window": reads,
        "read_ms_avg": round(read_ms, 1),
        "agent_cpu_ms_per_read": round((children_s + thread_s) * 1000 / max(1, reads), 1),
        "agent_cpu_ms_per_tick": round(cpu_per_tick * 1000, 1),
        "agent_cpu_ms_per_tick_per_watched_port": round(cpu_per_tick * 1000 / watched, 2),
        "agent_cpu_share_of_one_core": round((children_s + thread_s) / elapsed, 3),
        "counters_per_watcher_per_s_min": round(min(rates), 2),
        "counters_per_watcher_per_s_max": round(max(rates), 2),
        "packet_to_watcher_s_p50": _rounded_percentile(latencies, 0.5),
        "packet_to_watcher_s_p95": _rounded_percentile(latencies, 0.95),
        # the same from starting the probe process (python in the VM's namespace), which the
        # figure included before the probe said when its packet left
        "probe_start_to_watcher_s_p50": _rounded_percentile(with_spawn, 0.5),
        "probe_start_to_watcher_s_p95": _rounded_percentile(with_spawn, 0.95),
        "probes_seen": f"{len(with_spawn)}/{probes}",
        # of every counters message during the probes: the agent's publish to the watcher
        "publish_to_watcher_s_p50": _rounded_percentile(browsers.transit[transit_before:], 0.5),
        "publish_to_watcher_s_p95": _rounded_percentile(browsers.transit[transit_before:], 0.95),
    }


def _clean(keep: dict[str, Any]) -> None:
    import contextlib

    from sgweb.kernel.netns import remove_namespaces
    from sgweb.kernel.runner import default_runner

    if "browsers" in keep:
        with contextlib.suppress(Exception):
            keep["browsers"].close()
    if "streamer" in keep:
        keep["streamer"].stopping.set()
        keep["streamer"].join(timeout=5)
    if "daphne" in keep:
        stopped = keep["daphne"].stop(timeout=5)
        if os.environ.get("SGWV_DEBUG"):
            print(stopped.stderr[-3000:], file=sys.stderr)
    remove_namespaces(keep["prefix"], default_runner())
    with contextlib.suppress(Exception):
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"*{keep['key_prefix']}*"):
            client.delete(key)
        client.close()
    shutil.rmtree(keep["tmp"], ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live")
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--steady-s", type=float, default=15.0)
    parser.add_argument("--static-only", action="store_true")
    args = parser.parse_args(argv)
    token = secrets.token_hex(3)
    tmp = tempfile.mkdtemp(prefix="sgwv-live-")
    keep: dict[str, Any] = {"prefix": f"sgwv-{token}-", "key_prefix": f"sgwv-{token}",
                            "tmp": tmp}  # fmt: skip
    # A scratch database and Redis key space, set before Django reads its settings.
    os.environ.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
            "REDIS_URL": REDIS_URL,
            "CELERY_BROKER_URL": REDIS_URL,
            "SGWEB_KEY_PREFIX": keep["key_prefix"],
            "SGWEB_PUBLISH_TO_HOSTS": "0",
            "SGWEB_LIVE_EVENTS": "0",
            "DJANGO_SETTINGS_MODULE": "sgweb.settings",
        }
    )
    import django

    django.setup()
    from bench.scenarios import generated_scenario
    from sgweb.firewall.scenario import load_scenario

    state = load_scenario(generated_scenario(args.ports))
    result: dict[str, Any] = {"static_verdict": static_verdicts(state)}
    if not args.static_only:
        if os.geteuid() != 0:
            raise SystemExit("the live part builds namespaces: run as root (or --static-only)")
        try:
            keep["session"] = _populate(state, keep["prefix"] + "host")
            result["live_counters"] = live_counters(
                state, args.watchers, args.probes, args.steady_s, keep
            )
        finally:
            _clean(keep)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
