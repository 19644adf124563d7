"""The agent's live parts without a kernel: the counter thread against real Redis with a fake
reader, and the trace proof against a scripted runner."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
import types
from typing import Any

import pytest
import redis

from sgweb.firewall import names
from sgweb.firewall.compiler import compile_host
from sgweb.firewall.model import EGRESS, INGRESS, IPV4, HostState, Port, SecurityGroup
from sgweb.firewall.model import SecurityGroupRule as Rule
from sgweb.kernel.readback import Counter
from sgweb.kernel.runner import CommandResult
from sgweb.wire import live as wire
from sgweb.wire import traces as protocol
from tests.fakerunner import FakeRunner, RecordedCall
from worker import tracing
from worker.live import CounterStreamer

PREFIX = "neutron-openvswi"
A = Port("aaaaaaaa-1111-4000-8000-000000000001", "fa:16:3e:00:00:0a", ("192.0.2.10",), ("g1",),
         host="compute1")  # fmt: skip
B = Port("bbbbbbbb-2222-4000-8000-000000000002", "fa:16:3e:00:00:0b", ("192.0.2.20",), ("g1",),
         host="compute1")  # fmt: skip
WEB = SecurityGroup("g1", "web", True, (
    Rule("r-ssh", INGRESS, IPV4, "tcp", 22, 22, "198.51.100.0/24"),
    Rule("r-out", EGRESS, IPV4),
))  # fmt: skip
STATE = HostState(ports=(A, B), security_groups=(WEB,), host="compute1")
COMPILED = compile_host(STATE)
INGRESS_B = names.ingress_chain(PREFIX, B.id)


class FakeReader:
    def __init__(self) -> None:
        self.packets = 0
        self.reads: list[list[str]] = []

    def read_chains(self, chains, family=4, table="filter"):
        self.reads.append(list(chains))
        rules = COMPILED.v4.table("filter").chain(INGRESS_B).rules
        return {
            chain: [Counter(self.packets if r.origin.rule_id == "r-ssh" else 0, 0) for r in rules]
            for chain in chains
        }


@pytest.fixture
def client():
    client = redis.Redis.from_url("redis://127.0.0.1:6379/12")
    prefix = f"sgwt-{os.getpid()}-{secrets.token_hex(3)}"
    yield client, prefix
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def _agent(runner: Any = None) -> Any:
    applied = types.SimpleNamespace(compiled=COMPILED, state=STATE, revision=3)
    firewall = types.SimpleNamespace(netns="host1", runner=runner)
    paused: list[float] = []
    return types.SimpleNamespace(
        host="compute1", applied=applied, firewall=firewall, pause_drift=paused.append,
        paused=paused,
    )  # fmt: skip


@pytest.mark.redis
def test_the_counter_thread_reads_nothing_while_nobody_watches_then_only_the_watched_chains(
    client,
):
    redis_client, prefix = client
    streamer = CounterStreamer(_agent(), redis_client, prefix)
    streamer.reader = reader = FakeReader()
    assert streamer.tick() is None and reader.reads == []

    wire.register_watch(redis_client, prefix, "compute1", "w1", [f"4:filter:{INGRESS_B}"])
    pubsub = redis_client.pubsub()
    pubsub.subscribe(wire.counters_channel(prefix, "compute1"))
    streamer.min_gap_s = 0.0  # a moved counter goes out at the very next read
    first = streamer.tick()
    reader.packets = 3
    second = streamer.tick()
    assert reader.reads == [[INGRESS_B], [INGRESS_B]]
    assert first is not None and second is not None
    [chain] = second["chains"]
    ssh = next(rule for rule in chain["rules"] if rule["rule_id"] == "r-ssh")
    assert ssh["packets"] == 3 and ssh["pps"] > 0
    assert second["revision"] == 3 and second["type"] == "host-counters"
    assert redis_client.hget(wire.last_hit_key(prefix), "r-ssh") is not None
    stored = json.loads(
        redis_client.hget(wire.readings_key(prefix, "compute1"), f"4:filter:{INGRESS_B}")
    )
    assert stored["rules"] == chain["rules"]
    published = [m for m in iter(lambda: pubsub.get_message(timeout=0.5), None)
                 if m["type"] == "message"]  # fmt: skip
    assert [json.loads(m["data"])["at"] for m in published] == [first["at"], second["at"]]

    wire.release_watch(redis_client, prefix, "compute1", "w1")
    assert streamer.tick() is None and len(reader.reads) == 2
    pubsub.close()


def _monitor_output(handle_of_fallback: int) -> str:
    mark = "-4 -t raw -A PREROUTING -s 192.0.2.10/32 -d 192.0.2.20/32 -p tcp -j TRACE"
    return "\n".join([
        "PACKET: 2 7a7a7a7a IN=qbrbbbbbbbb-22 SRC=192.0.2.10 DST=192.0.2.20 LEN=60 PROTO=TCP",
        f" TRACE: 2 7a7a7a7a raw:PREROUTING:rule:0x2:CONTINUE  {mark}",
        " TRACE: 2 7a7a7a7a raw:PREROUTING:policy:ACCEPT",
        f" TRACE: 2 7a7a7a7a filter:{INGRESS_B}:rule:{hex(handle_of_fallback)}:"
        f"JUMP:{PREFIX}-sg-fallback  -4 -t filter -A {INGRESS_B} -j {PREFIX}-sg-fallback",
        f" TRACE: 2 7a7a7a7a filter:{PREFIX}-sg-fallback:rule:0x90:DROP  -4 -t filter -A x -j DROP",
    ]) + "\n"  # fmt: skip


def _listing(call: RecordedCall) -> CommandResult:
    table, chain = call.argv[-2], call.argv[-1]
    found = COMPILED.v4.table(table).chain(chain) if COMPILED.v4.table(table) else None
    rules = found.rules if found is not None else (None, None)
    lines = ["table ip filter {", f"\tchain {chain} {{"]
    lines += [f"\t\tcounter packets 0 bytes 0 # handle {0x40 + i}" for i in range(len(rules))]
    return CommandResult(call.argv, 0, "\n".join(lines) + "\n", "", 0.0, call.netns)


def test_a_probe_proof_reports_the_kernel_path_in_security_group_words_and_cleans_up():
    runner = FakeRunner()
    fallback_position = len(COMPILED.v4.table("filter").chain(INGRESS_B).rules)
    runner.on(
        ["ip", "-o", "link", "show", "eth0"], stdout="2: eth0@if3: link/ether fa:16:3e:00:00:0a"
    )
    monitor = _monitor_output(0x40 + fallback_position - 1)
    runner.on(["stdbuf", "-oL", "xtables-monitor"], stdout=monitor)
    runner.on(["nft", "-a", "list", "chain"], respond=_listing)
    runner.on([sys.executable], returncode=1, stdout='{"ok": false}')
    request = protocol.ProofRequest(
        trace_id="t1", host="compute1", mode=protocol.MODE_PROBE, family=4, protocol="tcp",
        src="192.0.2.10", dst="192.0.2.20", dport=5432, static_verdict="DROP",
        source_netns="lab-h1-vm1", source_mac="fa:16:3e:00:00:0a",
    )  # fmt: skip
    emitted: list[dict[str, Any]] = []
    agent = _agent(runner)
    result = tracing.prove(request, agent, emitted.append, runner=runner)
    packet, final = emitted
    assert packet["type"] == "trace-packet" and packet["direction"] == "request"
    assert packet["verdict"] == "DROP"
    labels = [step["label"] for step in packet["steps"]]
    assert "default drop" in labels
    assert not any("TRACE" in label for label in labels)
    assert final is result
    assert result["kernel_verdict"] == "DROP" and result["agrees"] is True
    assert result["status"] == protocol.STATUS_DONE and result["probe_ok"] is False
    assert "default drop" in result["summary"]
    commands = [" ".join(argv) for argv in runner.commands()]
    inserted = [c for c in commands if " -I PREROUTING 1 " in c]
    deleted = [c for c in commands if " -D PREROUTING " in c]
    assert len(inserted) == 2 and len(deleted) == 2
    assert any("-s 192.0.2.20 -d 192.0.2.10" in c for c in deleted)
    assert agent.paused, "drift checks are held while the TRACE rules exist"


def test_an_observation_that_sees_nothing_times_out_without_a_verdict():
    runner = FakeRunner()
    request = protocol.ProofRequest(
        trace_id="t2", host="compute1", mode=protocol.MODE_OBSERVE, family=4, protocol="icmp",
        src="203.0.113.9", dst="192.0.2.20", icmp_type=8, static_verdict="ACCEPT",
        observe_s=0.1,
    )  # fmt: skip
    emitted: list[dict[str, Any]] = []
    result = tracing.prove(request, _agent(runner), emitted.append, runner=runner)
    assert emitted == [result]
    assert result["status"] == protocol.STATUS_TIMEOUT
    assert result["kernel_verdict"] is None and result["agrees"] is None
    assert not any(argv[0] == sys.executable for argv in runner.commands())


def test_an_observation_reports_real_traffic_as_it_is_seen_and_stops_once_settled():
    runner = FakeRunner()
    fallback_position = len(COMPILED.v4.table("filter").chain(INGRESS_B).rules)
    runner.on(["stdbuf", "-oL", "xtables-monitor"],
              stdout=_monitor_output(0x40 + fallback_position - 1))  # fmt: skip
    runner.on(["nft", "-a", "list", "chain"], respond=_listing)
    request = protocol.ProofRequest(
        trace_id="t4", host="compute1", mode=protocol.MODE_OBSERVE, family=4, protocol="tcp",
        src="192.0.2.10", dst="192.0.2.20", dport=5432, static_verdict="DROP", observe_s=5,
    )  # fmt: skip
    emitted: list[dict[str, Any]] = []
    started = time.monotonic()
    result = tracing.prove(request, _agent(runner), emitted.append, runner=runner)
    assert time.monotonic() - started < 3, "a dropped request settles the observation"
    assert [m["type"] for m in emitted] == ["trace-packet", "trace-result"]
    assert result["status"] == protocol.STATUS_OBSERVED and result["agrees"] is True


def test_a_missing_lab_namespace_fails_the_proof_with_a_reason():
    runner = FakeRunner()
    runner.on(["ip", "-o", "link", "show", "eth0"], returncode=1)
    request = protocol.ProofRequest(
        trace_id="t3", host="compute1", mode=protocol.MODE_PROBE, family=4, protocol="icmp",
        src="192.0.2.10", dst="192.0.2.20", source_netns="gone",
    )  # fmt: skip
    result = tracing.prove(request, _agent(runner), lambda message: None, runner=runner)
    assert result["status"] == protocol.STATUS_FAILED and "not there" in result["summary"]
    assert not any("TRACE" in argv for argv in runner.commands())


def _probe_runner(*monitor_outputs: str | CommandResult) -> FakeRunner:
    """A lab host whose successive xtables-monitor runs print `monitor_outputs` in turn (a
    CommandResult: a monitor that also ended so)."""
    runner = FakeRunner()
    runner.on(
        ["ip", "-o", "link", "show", "eth0"], stdout="2: eth0@if3: link/ether fa:16:3e:00:00:0a"
    )
    outputs = list(monitor_outputs)

    def monitor(call: RecordedCall) -> CommandResult:
        output = outputs.pop(0) if outputs else ""
        if isinstance(output, CommandResult):
            return output
        return CommandResult(call.argv, 0, output, "", 0.0, call.netns)

    runner.on(["stdbuf", "-oL", "xtables-monitor"], respond=monitor)
    runner.on(["nft", "-a", "list", "chain"], respond=_listing)
    runner.on([sys.executable], returncode=0, stdout='{"ok": true}')
    return runner


def _probe_request(trace_id: str, static: str) -> protocol.ProofRequest:
    return protocol.ProofRequest(
        trace_id=trace_id, host="compute1", mode=protocol.MODE_PROBE, family=4, protocol="tcp",
        src="192.0.2.10", dst="192.0.2.20", dport=5432, static_verdict=static,
        source_netns="lab-h1-vm1", source_mac="fa:16:3e:00:00:0a",
    )  # fmt: skip


def test_a_traversal_without_a_verdict_never_counts_as_agreement():
    # Only the raw table's part was traced (the trace ended before the filter table decided).
    undecided = "\n".join(_monitor_output(0x40).splitlines()[:3]) + "\n"
    runner = _probe_runner(undecided)
    emitted: list[dict[str, Any]] = []
    result = tracing.prove(_probe_request("t5", "ACCEPT"), _agent(runner), emitted.append,
                           runner=runner)  # fmt: skip
    assert [m["verdict"] for m in emitted if m["type"] == "trace-packet"] == ["unknown"]
    assert result["kernel_verdict"] == "unknown" and result["agrees"] is None
    assert "nothing is proved" in result["summary"]
    assert "agrees" not in result["summary"]


def test_a_probe_the_kernel_did_not_see_is_retried_once_and_the_summary_says_why():
    fallback_position = len(COMPILED.v4.table("filter").chain(INGRESS_B).rules)
    runner = _probe_runner("", _monitor_output(0x40 + fallback_position - 1))
    result = tracing.prove(_probe_request("t6", "DROP"), _agent(runner), lambda m: None,
                           runner=runner)  # fmt: skip
    probes = [argv for argv in runner.commands() if argv[0] == sys.executable]
    assert len(probes) == 2
    assert result["kernel_verdict"] == "DROP" and result["agrees"] is True
    assert result["retried"] is True
    assert "retried once: the kernel saw no packet of the first probe" in result["summary"]


def test_a_probe_unseen_twice_reports_no_packet_after_one_retry():
    runner = _probe_runner("", "")
    result = tracing.prove(_probe_request("t7", "DROP"), _agent(runner), lambda m: None,
                           runner=runner)  # fmt: skip
    assert len([argv for argv in runner.commands() if argv[0] == sys.executable]) == 2
    assert result["kernel_verdict"] is None and result["agrees"] is None
    assert result["summary"].startswith("the kernel saw no packet of this flow (retried once")


ENOBUFS = "cannot receive from nfnetlink socket: No buffer space available\n"


def _died(output: str) -> CommandResult:
    """A monitor that exited on ENOBUFS after printing `output` (its queue was full)."""
    return CommandResult(("xtables-monitor",), 1, output, ENOBUFS, 0.1)


def _accepted() -> str:
    return "\n".join([
        *_monitor_output(0x40).splitlines()[:3],
        f" TRACE: 2 7a7a7a7a filter:{PREFIX}-sg-chain:rule:0x91:ACCEPT  "
        f"-4 -t filter -A {PREFIX}-sg-chain -j ACCEPT",
    ]) + "\n"  # fmt: skip


def test_a_probe_whose_trace_the_monitor_cut_short_is_traced_again_and_the_whole_trace_decides():
    undecided = "\n".join(_monitor_output(0x40).splitlines()[:3]) + "\n"
    runner = _probe_runner(_died(undecided), _accepted())
    emitted: list[dict[str, Any]] = []
    result = tracing.prove(_probe_request("t8", "ACCEPT"), _agent(runner), emitted.append,
                           runner=runner)  # fmt: skip
    assert len([argv for argv in runner.commands() if argv[0] == sys.executable]) == 2
    # The cut-short traversal is not shown: only the second trace's packet is.
    assert [m["verdict"] for m in emitted if m["type"] == "trace-packet"] == ["ACCEPT"]
    assert result["kernel_verdict"] == "ACCEPT" and result["agrees"] is True
    assert result["retried"] is True
    assert (
        "retried once: the trace of the first probe, which was answered, was incomplete (the "
        "trace monitor stopped early: cannot receive from nfnetlink socket: No buffer space "
        "available)"
    ) in result["summary"]


def test_an_accept_seen_by_a_trace_that_stayed_incomplete_proves_nothing():
    runner = _probe_runner(_died(""), _died(_accepted()))
    result = tracing.prove(_probe_request("t9", "ACCEPT"), _agent(runner), lambda m: None,
                           runner=runner)  # fmt: skip
    assert result["kernel_verdict"] == "unknown" and result["agrees"] is None
    assert result["summary"].startswith(
        "the kernel trace is incomplete (the trace monitor stopped early: cannot receive from "
        "nfnetlink socket: No buffer space available): 1 traversal seen, nothing is proved"
    )


def test_a_drop_seen_by_a_trace_that_stayed_incomplete_still_counts_and_says_so():
    fallback_position = len(COMPILED.v4.table("filter").chain(INGRESS_B).rules)
    dropped = _monitor_output(0x40 + fallback_position - 1)
    runner = _probe_runner(_died(""), _died(dropped))
    result = tracing.prove(_probe_request("t10", "DROP"), _agent(runner), lambda m: None,
                           runner=runner)  # fmt: skip
    assert result["kernel_verdict"] == "DROP" and result["agrees"] is True
    assert result["summary"].endswith(
        "; the trace is incomplete (the trace monitor stopped early: cannot receive from "
        "nfnetlink socket: No buffer space available) (retried once: the trace of the first "
        "probe, which was answered, was incomplete (the trace monitor stopped early: cannot "
        "receive from nfnetlink socket: No buffer space available))"
    )


def _two_host_request(trace_id: str, destination: dict[str, Any]) -> protocol.ProofRequest:
    hops = [{"host": "compute1", "static": "DROP", "traced": True, "why": ""},
            {"host": "compute2", "static": None, **destination}]  # fmt: skip
    return protocol.ProofRequest(**{**_probe_request(trace_id, "DROP").to_dict(), "hops": hops})


def _dropping_runner() -> FakeRunner:
    fallback_position = len(COMPILED.v4.table("filter").chain(INGRESS_B).rules)
    return _probe_runner(_monitor_output(0x40 + fallback_position - 1))


def test_a_hop_whose_agent_is_down_rests_on_the_static_verdict_and_does_not_vote():
    runner = _dropping_runner()
    request = _two_host_request("t8", {"traced": False, "why": "its agent is not running"})
    result = tracing.prove(request, _agent(runner), lambda m: None, runner=runner)
    first, second = result["hops"]
    assert first["traced"] and first["kernel"] == "DROP" and first["agrees"] is True
    assert not second["traced"] and second["agrees"] is None
    assert result["agrees"] is True and result["untraced_hosts"] == ["compute2"]
    assert (
        "destination host compute2's part rests on the static verdict (its agent is not running)"
        in result["summary"]
    )


@pytest.mark.redis
def test_a_hop_host_that_never_says_ready_is_reported_untraced(client, monkeypatch):
    redis_client, prefix = client
    monkeypatch.setattr(protocol, "READY_TIMEOUT_S", 0.3)
    runner = _dropping_runner()
    agent = _agent(runner)
    agent.store = types.SimpleNamespace(client=redis_client,
                                        keys=types.SimpleNamespace(prefix=prefix))  # fmt: skip
    request = _two_host_request("t9", {"traced": True, "why": ""})
    started = time.monotonic()
    result = tracing.prove(request, agent, lambda m: None, runner=runner)
    assert time.monotonic() - started < 5
    assert result["untraced_hosts"] == ["compute2"]
    assert "its tracer was not ready within 0.3 s" in result["summary"]
    assert redis_client.get(protocol.board_key(prefix, "t9", "compute1", "done")) is not None


@pytest.mark.redis
def test_a_hop_host_says_ready_traces_until_the_prover_is_done_and_leaves_its_hop(client):
    redis_client, prefix = client
    runner = _dropping_runner()
    agent = _agent(runner)
    agent.host = "compute2"
    agent.store = types.SimpleNamespace(client=redis_client,
                                        keys=types.SimpleNamespace(prefix=prefix))  # fmt: skip
    request = protocol.ProofRequest(
        **{**_probe_request("t10", "DROP").to_dict(), "role": protocol.ROLE_HOP,
           "host": "compute2", "prover_host": "compute1", "mode": protocol.MODE_OBSERVE}
    )  # fmt: skip
    redis_client.set(protocol.board_key(prefix, "t10", "compute1", "done"), "{}")
    emitted: list[dict[str, Any]] = []
    hop = tracing.prove(request, agent, emitted.append, runner=runner)
    assert hop["kernel_verdict"] == "DROP" and hop["error"] is None
    assert redis_client.get(protocol.board_key(prefix, "t10", "compute2", "ready")) is not None
    stored = json.loads(redis_client.get(protocol.board_key(prefix, "t10", "compute2", "hop")))
    assert stored["kernel_verdict"] == "DROP" and stored["host"] == "compute2"
    assert [m["type"] for m in emitted] == ["trace-packet"]  # the prover sends the result
    assert emitted[0]["host"] == "compute2"


@pytest.mark.redis
def test_a_moved_counter_is_published_at_the_next_read_and_a_quiet_one_once_a_tick(client):
    redis_client, prefix = client
    streamer = CounterStreamer(_agent(), redis_client, prefix)
    streamer.reader = reader = FakeReader()
    wire.register_watch(redis_client, prefix, "compute1", "w1", [f"4:filter:{INGRESS_B}"])
    assert streamer.tick() is not None  # the first reading always goes out
    assert streamer.tick() is None  # nothing moved, the last message is fresh
    reader.packets = 1
    assert streamer.tick() is None  # moved, but the last message is younger than the gap
    streamer.published_at -= streamer.min_gap_s
    moved = streamer.tick()
    assert moved is not None and moved["chains"][0]["rules"]
    streamer.published_at -= streamer.min_gap_s
    assert streamer.tick() is None  # quiet again: no message until a tick has passed
    streamer.published_at -= streamer.every_s
    assert streamer.tick() is not None
    assert streamer.reads == 6 and streamer.ticks == 3
