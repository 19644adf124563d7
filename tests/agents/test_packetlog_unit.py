"""The drop log's agent side without a kernel: ulogd's JSON lines decoded into packets, packets
aggregated into bounded flows, flows sent as `sgweb.wire.packetlog` batches.

The JSON lines are ulogd2 2.0.8's own output (NFLOG -> BASE -> IP2STR -> JSON), trimmed of keys
the decoder does not read; the real-kernel tier is tests/kernel/test_drop_log_agent_kernel.py.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import pytest

from sgweb.firewall.model import HostState, LogSettings
from sgweb.kernel.nflog import LogPacket, decode_line, decode_record, parse_prefix, ulogd_config
from sgweb.wire import packetlog as wire
from tests.kernel.test_firewall_e2e import WEB_PORT, state
from worker.packetlog import FlowTable, PacketLog, logged_groups, packet_key

PORT = WEB_PORT.id
TCP_V4 = {
    "timestamp": "2026-12-07T02:24:31.888973", "dvc": "Netfilter", "raw.pktlen": 60,
    "oob.prefix": f"DROP ingress {PORT}", "oob.time.sec": 1796610271, "oob.time.usec": 888973,
    "oob.family": 2, "oob.protocol": 2048, "ip.protocol": 6, "ip.ttl": 64, "src_port": 52058,
    "dest_port": 5432, "tcp.syn": 1, "src_ip": "198.51.100.7", "dest_ip": "192.0.2.11",
}  # fmt: skip
TCP_V6 = {
    "oob.prefix": f"ACCEPT egress {PORT}", "oob.time.sec": 1796610271, "oob.time.usec": 889197,
    "oob.family": 10, "oob.protocol": 34525, "ip.protocol": 6, "ip6.nexthdr": 6,
    "src_port": 39848, "dest_port": 5432, "src_ip": "2001:db8::11", "dest_ip": "2001:db8::12",
}  # fmt: skip
ICMP_V4 = {
    "oob.prefix": f"DROP ingress {PORT}", "oob.time.sec": 1796610272, "oob.time.usec": 5,
    "oob.family": 2, "ip.protocol": 1, "icmp.type": 8, "icmp.code": 0, "icmp.echoid": 7,
    "src_ip": "203.0.113.5", "dest_ip": "192.0.2.11",
}  # fmt: skip
ICMP_V6 = {
    "oob.prefix": f"DROP ingress {PORT}", "oob.time.sec": 1796610272, "oob.time.usec": 0,
    "oob.family": 10, "ip.protocol": 58, "icmpv6.type": 128, "icmpv6.code": 0,
    "src_ip": "2001:db8::99", "dest_ip": "2001:db8::11",
}  # fmt: skip


def test_a_prefix_names_event_direction_and_port_and_a_foreign_one_is_refused() -> None:
    assert parse_prefix(f"DROP ingress {PORT}") == ("DROP", "ingress", PORT)
    assert parse_prefix(f"ACCEPT egress {PORT}") == ("ACCEPT", "egress", PORT)
    for foreign in ("", "DROP", "REJECT ingress x", "DROP sideways x", "DROP ingress", 7, None):
        assert parse_prefix(foreign) is None


def test_a_dropped_tcp_syn_decodes_into_its_five_tuple_and_time() -> None:
    packet = decode_line(json.dumps(TCP_V4))
    assert packet == LogPacket(
        "DROP", "ingress", PORT, 4, 6, "198.51.100.7", "192.0.2.11", 52058, 5432,
        time=1796610271.888973,
    )  # fmt: skip


def test_an_ipv6_packet_decodes_with_its_ports_and_no_icmp_fields() -> None:
    packet = decode_record(TCP_V6)
    assert packet is not None
    assert (packet.family, packet.protocol, packet.src, packet.dst) == (
        6, 6, "2001:db8::11", "2001:db8::12",
    )  # fmt: skip
    assert (packet.src_port, packet.dst_port, packet.icmp_type) == (39848, 5432, None)


def test_icmp_and_icmpv6_decode_type_and_code_and_no_ports() -> None:
    v4, v6 = decode_record(ICMP_V4), decode_record(ICMP_V6)
    assert v4 is not None and v6 is not None
    assert (v4.protocol, v4.icmp_type, v4.icmp_code, v4.src_port) == (1, 8, 0, None)
    assert (v6.protocol, v6.icmp_type, v6.icmp_code, v6.dst_port) == (58, 128, 0, None)


def test_an_ipv6_packet_without_ip_protocol_falls_back_to_the_next_header() -> None:
    record = {k: v for k, v in TCP_V6.items() if k != "ip.protocol"}
    packet = decode_record(record)
    assert packet is not None and packet.protocol == 6


def test_a_packet_without_a_kernel_timestamp_gets_the_time_it_was_read() -> None:
    record = {k: v for k, v in TCP_V4.items() if not k.startswith("oob.time")}
    packet = decode_record(record, now=1234.5)
    assert packet is not None and packet.time == 1234.5


@pytest.mark.parametrize(
    "broken",
    [
        "not json",
        "[1, 2]",
        json.dumps({**TCP_V4, "oob.prefix": "someone else's log"}),
        json.dumps({**TCP_V4, "oob.family": 7}),  # ARP, bridge: not an IP packet of ours
        json.dumps({k: v for k, v in TCP_V4.items() if k != "src_ip"}),
        json.dumps({k: v for k, v in TCP_V4.items() if k != "ip.protocol"}),
    ],
)
def test_what_is_not_a_logged_ip_packet_of_ours_decodes_to_nothing(broken: str) -> None:
    assert decode_line(broken) is None


def test_ulogd_gets_one_stack_per_group_writing_json_lines_to_its_stdout() -> None:
    text = ulogd_config((10, 11), "/usr/lib/x/ulogd", "/tmp/u.log")
    assert 'plugin="/usr/lib/x/ulogd/ulogd_output_JSON.so"' in text
    assert "stack=log0:NFLOG,base0:BASE,ip2str0:IP2STR,json0:JSON" in text
    assert "stack=log1:NFLOG,base1:BASE,ip2str1:IP2STR,json1:JSON" in text
    assert "group=10" in text and "group=11" in text
    assert text.count('file="/dev/stdout"') == 2 and "sync=1" in text


def test_the_groups_to_bind_are_the_hosts_while_a_port_is_logged_and_none_otherwise() -> None:
    plain = state()
    assert logged_groups(None) == ()
    assert logged_groups(plain) == ()
    logged = logged_state(plain, "DROP")
    assert logged_groups(logged) == (10, 11)
    moved = replace(logged, log_settings=LogSettings(nflog_group_v4=20, nflog_group_v6=20))
    assert logged_groups(moved) == (20,)


def logged_state(base: HostState, events: str) -> HostState:
    ports = tuple(replace(p, log_events=events) if p.id == PORT else p for p in base.ports)
    return replace(base, ports=ports)


def packet(at: float, *, sport: int = 40000, port: str = PORT, event: str = "DROP") -> LogPacket:
    src, dst = "198.51.100.7", "192.0.2.11"
    return LogPacket(event, "ingress", port, 4, 6, src, dst, sport, 5432, time=at)


def test_the_packet_key_is_the_flow_key_of_the_flow_it_becomes() -> None:
    table = FlowTable()
    table.add(packet(100.0))
    flows, _ = table.drain(now=100.0)
    assert [flow.key() for flow in flows] == [packet_key(packet(100.0))]


def test_a_burst_of_one_five_tuple_is_one_flow_with_first_and_last_seen_and_count() -> None:
    table = FlowTable()
    for i in range(5):
        table.add(packet(100.0 + i * 0.1))
    flows, shed = table.drain(now=101.0)
    assert shed == 0 and len(flows) == 1
    flow = flows[0]
    assert (flow.first_seen, flow.last_seen, flow.count) == (100.0, 100.4, 5)
    assert (flow.event, flow.ethertype, flow.decided_by) == ("DROP", "IPv4", "fallback")


def test_a_growing_flow_is_reported_again_with_its_totals_and_a_quiet_one_not() -> None:
    table = FlowTable()
    table.add(packet(100.0))
    assert [f.count for f in table.drain(now=100.0)[0]] == [1]
    table.add(packet(101.0))
    table.add(packet(102.0))
    (flow,) = table.drain(now=102.0)[0]
    assert (flow.first_seen, flow.last_seen, flow.count) == (100.0, 102.0, 3)
    assert table.drain(now=103.0) == ([], 0)


def test_a_flow_that_comes_back_after_its_window_is_a_new_flow() -> None:
    table = FlowTable(window_s=5.0)
    table.add(packet(100.0))
    table.add(packet(106.0))  # 6 s after the last packet: the first flow ended unsent
    flows, _ = table.drain(now=106.0)
    assert [(f.first_seen, f.count) for f in flows] == [(100.0, 1), (106.0, 1)]


def test_flows_quiet_for_longer_than_the_window_are_forgotten() -> None:
    table = FlowTable(window_s=5.0)
    table.add(packet(100.0))
    table.drain(now=100.0)
    assert len(table) == 1
    table.drain(now=106.0)
    assert len(table) == 0


def test_new_flows_beyond_the_bound_are_shed_and_counted() -> None:
    table = FlowTable(max_open=3, max_per_port=3)
    for sport in range(10):
        table.add(packet(100.0, sport=40000 + sport))
    table.add(packet(100.1, sport=40000))  # a known flow still counts
    flows, shed = table.drain(now=100.1)
    assert len(table) == 3 and shed == 7
    assert sorted(f.count for f in flows) == [1, 1, 2]
    assert table.packets == 11


def test_a_port_under_a_flood_of_many_flows_leaves_room_for_the_others() -> None:
    table = FlowTable(max_open=10, max_per_port=4)
    for sport in range(100):
        table.add(packet(100.0, sport=40000 + sport))
    other = "22222222-bbbb-4bbb-8bbb-000000000012"
    table.add(packet(100.2, port=other))
    flows, shed = table.drain(now=100.2)
    assert shed == 96
    assert other in {flow.port_id for flow in flows}


class Capture:
    def __init__(self, fail: int = 0) -> None:
        self.documents: list[dict[str, Any]] = []
        self.fail = fail

    def __call__(self, document: dict[str, Any]) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker away")
        json.dumps(document)  # what Celery's JSON serializer must accept
        self.documents.append(document)

    def flows(self) -> list[wire.Flow]:
        return [f for d in self.documents for f in wire.parse_flow_batch(d).flows]


def thread(send: Capture, table: FlowTable | None = None, batch_size: int = 500) -> PacketLog:
    return PacketLog(
        "compute-1", runner=None, netns=None, state_of=lambda: None, send=send,  # type: ignore[arg-type]
        table=table, batch_size=batch_size,
    )  # fmt: skip


def test_batches_parse_as_the_wire_says_and_count_up_with_what_was_shed() -> None:
    send = Capture()
    log = thread(send, FlowTable(max_open=2, max_per_port=2))
    for sport in range(5):
        log.table.add(packet(100.0, sport=40000 + sport))
    assert log.flush(now=100.0) == 1
    assert log.flush(now=100.1) == 0  # nothing new: nothing sent
    log.table.add(packet(100.2))
    log.flush(now=100.2)
    batches = [wire.parse_flow_batch(d) for d in send.documents]
    assert [b.sequence for b in batches] == [1, 2]
    assert [b.shed for b in batches] == [3, 0]
    assert {b.host for b in batches} == {"compute-1"} and batches[0].run == batches[1].run


def test_many_flows_go_out_in_batches_of_the_bounded_size() -> None:
    send = Capture()
    log = thread(send, batch_size=4)
    for sport in range(10):
        log.table.add(packet(100.0, sport=40000 + sport))
    assert log.flush(now=100.0) == 3
    assert [len(d["flows"]) for d in send.documents] == [4, 4, 2]


def test_a_batch_the_broker_did_not_take_goes_out_with_the_next_one() -> None:
    send = Capture(fail=1)
    log = thread(send, FlowTable(window_s=5.0, max_open=1, max_per_port=1))
    log.table.add(packet(100.0))
    log.table.add(packet(100.0, sport=1))  # shed: no room
    assert log.flush(now=100.0) == 0
    log.table.add(packet(106.0))  # the first flow ended while unsent: its report waits
    assert log.flush(now=106.0) == 1
    (batch,) = [wire.parse_flow_batch(d) for d in send.documents]
    assert batch.shed == 1
    assert [(f.first_seen, f.count) for f in batch.flows] == [(100.0, 1), (106.0, 1)]


def test_a_logged_packet_is_new_in_a_stateful_port_and_untracked_in_a_stateless_one() -> None:
    # ulogd's JSON has no conntrack state: the agent derives it from the applied state.
    stateful = logged_state(state(), "ALL")
    groups = tuple(replace(group, stateful=False) for group in stateful.security_groups)
    stateless = replace(stateful, security_groups=groups)
    applied = [stateful]
    send = Capture()
    log = PacketLog(
        "compute-1", runner=None, netns=None,  # type: ignore[arg-type]
        state_of=lambda: applied[-1], send=send,
    )  # fmt: skip
    log.table.add(packet(100.0))
    log.table.add(packet(100.0, port="a-port-the-state-does-not-have"))
    log.flush(now=100.0)
    applied.append(stateless)
    log.table.add(packet(101.0, event="ACCEPT"))
    log.flush(now=101.0)
    assert [(f.port_id, f.event, f.ct_state) for f in send.flows()] == [
        (PORT, "DROP", "NEW"),
        ("a-port-the-state-does-not-have", "DROP", None),
        (PORT, "ACCEPT", "UNTRACKED"),
    ]


def test_the_agent_reads_the_drop_logs_settings_from_its_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from worker.config import AgentConfig, ConfigError

    monkeypatch.setenv("SGWEB_HOST", "compute-1")
    default = AgentConfig.from_env()
    assert (default.packet_log_interval_s, default.packet_log_max_flows) == (
        wire.SEND_INTERVAL_S, wire.MAX_OPEN_FLOWS,
    )  # fmt: skip
    monkeypatch.setenv("SGWEB_PACKET_LOG_INTERVAL_S", "0")
    monkeypatch.setenv("SGWEB_PACKET_LOG_OPEN_FLOWS", "300")
    config = AgentConfig.from_env()
    assert (config.packet_log_interval_s, config.packet_log_max_flows) == (0.0, 300)
    for bad in ("many", "0", "-5"):
        monkeypatch.setenv("SGWEB_PACKET_LOG_OPEN_FLOWS", bad)
        with pytest.raises(ConfigError, match="SGWEB_PACKET_LOG_OPEN_FLOWS"):
            AgentConfig.from_env()


def test_the_agent_sends_a_batch_as_the_record_flows_task_on_the_control_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from worker import app as agent_app

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(agent_app.app, "send_task", lambda *a, **kw: calls.append((a, kw)))
    document = wire.FlowBatch("compute-1", 1, 1.0, 2.0).as_dict()
    agent_app.send_flows(document)
    assert calls == [
        (
            (wire.TASK_RECORD_FLOWS,),
            {"kwargs": {"batch": document}, "queue": agent_app.config.control_queue},
        )
    ]


def test_without_ulogd_the_agent_says_so_and_keeps_sending_what_it_has(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sgweb.kernel import nflog

    monkeypatch.setattr(nflog.shutil, "which", lambda name: None)
    send = Capture()
    log = PacketLog(
        "compute-1", runner=None, netns=None,  # type: ignore[arg-type]
        state_of=lambda: logged_state(state(), "ALL"), send=send,
    )  # fmt: skip
    log.table.add(packet(time.time()))
    log.tick()
    log._next_try = 0.0  # a minute later: still missing, not said again
    log.tick()
    assert log.receiver is None
    assert caplog.text.count("install Debian's ulogd2") == 1
    assert len(send.flows()) == 1


class FakeReceiver:
    """A `UlogdReceiver` that binds at once; remembers every one started."""

    started: list[FakeReceiver] = []

    def __init__(self, runner: Any, netns: Any, groups: tuple[int, ...], on_packet: Any) -> None:
        self.groups, self.alive = groups, False

    def start(self) -> None:
        self.alive = True
        FakeReceiver.started.append(self)

    def stop(self) -> None:
        self.alive = False

    def log_text(self) -> str:
        return ""


def test_the_groups_of_a_state_about_to_be_applied_are_bound_before_its_rules_and_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import worker.packetlog as module

    monkeypatch.setattr(module, "UlogdReceiver", FakeReceiver)
    FakeReceiver.started = []
    applied: list[HostState] = [state()]  # no port logged yet
    log = PacketLog(
        "compute-1", runner=None, netns=None,  # type: ignore[arg-type]
        state_of=lambda: applied[-1], send=Capture(),
    )  # fmt: skip
    log.tick()
    assert log.receiver is None
    # The agent is about to apply a state that logs a port: the receiver listens first, so the
    # first copies the new NFLOG rules send are not lost.
    log.prepare(logged_state(state(), "DROP"))
    assert log.receiver is not None and log.receiver.groups == (10, 11)
    log.tick()  # the thread, while the apply still runs, keeps it
    assert len(FakeReceiver.started) == 1 and log.receiver.alive
    applied.append(logged_state(state(), "DROP"))
    log.tick()
    assert len(FakeReceiver.started) == 1
    log.prepare(state())  # logging off: the receiver goes
    assert log.receiver is None
