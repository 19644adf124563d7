"""The drop log in the agent (issue 13): logged packets in, flow batches out to the control plane.

`FlowTable` aggregates: packets with the same `Flow.key()` within `window_s` of the flow's last
packet are one flow. A batch carries each flow that changed since the previous batch with its
**totals so far** (the flow's ``first_seen``, ``last_seen``, ``count``): a flow that lasts a
minute is reported every `SEND_INTERVAL_S` with the same first_seen and a growing count, and
the control plane keeps the largest count per (key, first_seen), so a batch delivered twice
counts once. A flow that comes back after its window is a new flow (a later first_seen).

Bounded memory: at most `max_open` open flows (and `max_per_port` of one port, so a port under
a flood of many 5-tuples cannot crowd out the drops of the others), and at most `max_open`
reports of ended flows waiting. A packet that finds no room is shed and counted in the next
batch's `shed`. A batch that cannot be sent (the broker away) is tried again with the next one:
open flows report their totals anyway, ended ones wait (within the same bound).

`PacketLog` is the agent's thread: it keeps a `UlogdReceiver` bound to the host's NFLOG groups
while the applied state has a logged port (and none otherwise: no process, no cost), and every
`interval_s` sends what the table has as `TASK_RECORD_FLOWS` documents.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sgweb.firewall.compiler import port_is_stateful
from sgweb.firewall.model import HostState
from sgweb.kernel.nflog import LogPacket, UlogdMissing, UlogdReceiver
from sgweb.kernel.runner import CommandRunner
from sgweb.wire import packetlog as wire

log = logging.getLogger("sgweb.agent.packetlog")

DECIDED_BY_FALLBACK = "fallback"  # the DROP log sits right in front of the default drop
_ETHERTYPES = {4: "IPv4", 6: "IPv6"}
MISSING_RETRY_S = 60.0
FAILED_RETRY_S = 5.0
ENDED_RETRY_S = 1.0
CT_NEW = "NEW"
CT_UNTRACKED = "UNTRACKED"


def packet_key(packet: LogPacket) -> tuple[Any, ...]:
    """The packet's flow key, in `Flow.key()`'s order (no Flow is built per packet)."""
    return (
        packet.port_id, packet.direction, packet.event, _ETHERTYPES[packet.family],
        packet.protocol, packet.src, packet.dst, packet.src_port, packet.dst_port,
        packet.icmp_type, packet.icmp_code,
    )  # fmt: skip


class _Open:
    """An open flow: its totals so far, and whether they changed since the last batch."""

    __slots__ = ("count", "dirty", "first", "last", "packet")

    def __init__(self, packet: LogPacket) -> None:
        self.packet = packet
        self.first = self.last = packet.time
        self.count = 1
        self.dirty = True

    def report(self) -> wire.Flow:
        p = self.packet
        return wire.Flow(
            port_id=p.port_id, direction=p.direction, event=p.event,
            ethertype=_ETHERTYPES[p.family], protocol=p.protocol, src=p.src, dst=p.dst,
            src_port=p.src_port, dst_port=p.dst_port, icmp_type=p.icmp_type,
            icmp_code=p.icmp_code, first_seen=self.first, last_seen=self.last, count=self.count,
            decided_by=DECIDED_BY_FALLBACK if p.event == wire.EVENT_DROP else None,
        )  # fmt: skip


@dataclass
class FlowTable:
    window_s: float = wire.FLOW_WINDOW_S
    max_open: int = wire.MAX_OPEN_FLOWS
    max_per_port: int = wire.MAX_OPEN_FLOWS // 4
    packets: int = 0  # every packet offered, kept or shed
    shed: int = 0  # packets shed since the last drain
    _open: dict[tuple[Any, ...], _Open] = field(default_factory=dict)
    _per_port: dict[str, int] = field(default_factory=dict)
    _ready: list[wire.Flow] = field(default_factory=list)  # last reports of flows that ended
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __len__(self) -> int:
        return len(self._open)

    @property
    def pending(self) -> int:
        return len(self._ready)

    def add(self, packet: LogPacket) -> None:
        key = packet_key(packet)
        with self._lock:
            self.packets += 1
            entry = self._open.get(key)
            if entry is not None and packet.time - entry.last <= self.window_s:
                entry.count += 1
                entry.last = max(entry.last, packet.time)
                entry.dirty = True
                return
            if entry is not None:  # the flow ended: its last report waits, a new flow starts
                if entry.dirty:
                    self._keep_ready(entry.report())
                self._open[key] = _Open(packet)
                return
            port = packet.port_id
            if len(self._open) >= self.max_open or self._per_port.get(port, 0) >= self.max_per_port:
                self.shed += 1
                return
            self._open[key] = _Open(packet)
            self._per_port[port] = self._per_port.get(port, 0) + 1

    def _keep_ready(self, flow: wire.Flow) -> None:
        if len(self._ready) >= self.max_open:
            self.shed += flow.count
        else:
            self._ready.append(flow)

    def drain(self, now: float | None = None) -> tuple[list[wire.Flow], int]:
        """The reports to send (flows that ended, then open flows that changed) and the
        packets shed since the last drain; flows quiet for longer than the window are
        forgotten."""
        now = time.time() if now is None else now
        with self._lock:
            flows, self._ready = self._ready, []
            shed, self.shed = self.shed, 0
            gone = []
            for key, entry in self._open.items():
                if entry.dirty:
                    flows.append(entry.report())
                    entry.dirty = False
                elif now - entry.last > self.window_s:
                    gone.append(key)
            for key in gone:
                del self._open[key]
                port = key[0]
                left = self._per_port[port] - 1
                if left:
                    self._per_port[port] = left
                else:
                    del self._per_port[port]
        return flows, shed

    def retry(self, flows: Iterable[wire.Flow], shed: int) -> None:
        """Reports that could not be sent go out with the next batch: an open flow is marked
        changed (its next report carries the totals), an ended one waits again (if there is
        room; else its packets count as shed)."""
        with self._lock:
            self.shed += shed
            for flow in flows:
                entry = self._open.get(flow.key())
                if entry is not None and entry.first == flow.first_seen:
                    entry.dirty = True
                else:
                    self._keep_ready(flow)


def logged_groups(state: HostState | None) -> tuple[int, ...]:
    """The NFLOG groups to bind: the host's, when one of its ports is logged."""
    if state is None or not any(port.log_events for port in state.ports):
        return ()
    settings = state.log_settings
    return tuple(sorted({settings.nflog_group(4), settings.nflog_group(6)}))


def ct_states(state: HostState | None) -> dict[str, str]:
    """The conntrack state of every logged packet of each port of `state`, by port id.

    ulogd's JSON carries no conntrack state, but the chains fix it: both NFLOG rules (in front
    of the default drop, in front of a user rule) sit after the port chain's RELATED,ESTABLISHED
    accept and INVALID drop, so a logged packet of a stateful port opens a NEW connection, and
    one of a port whose groups are all stateless was never tracked (the raw table's notrack)."""
    if state is None:
        return {}
    groups = {group.id: group for group in state.security_groups}
    return {
        port.id: CT_NEW if port_is_stateful(port, groups) else CT_UNTRACKED
        for port in state.ports
        if port.log_events
        and port.port_security_enabled
        # a state that never passed validation (a failed apply) may name a group it lacks
        and all(gid in groups for gid in port.security_groups)
    }


def with_ct_states(flows: list[wire.Flow], states: Mapping[str, str]) -> list[wire.Flow]:
    """`flows` with the conntrack state of their port (a port the state no longer has: none)."""
    return [
        flow if flow.ct_state is not None or flow.port_id not in states
        else replace(flow, ct_state=states[flow.port_id])
        for flow in flows
    ]  # fmt: skip


Send = Callable[[dict[str, Any]], None]


class PacketLog(threading.Thread):
    """The agent's drop-log thread: receiver lifecycle and sending, every `interval_s`."""

    def __init__(
        self,
        host: str,
        runner: CommandRunner,
        netns: str | None,
        state_of: Callable[[], HostState | None],
        send: Send,
        *,
        interval_s: float = wire.SEND_INTERVAL_S,
        table: FlowTable | None = None,
        batch_size: int = wire.MAX_FLOWS_PER_BATCH,
    ) -> None:
        super().__init__(name="sgweb-packetlog", daemon=True)
        self.host = host
        self.runner = runner
        self.netns = netns
        self.state_of = state_of
        self.send = send
        self.interval_s = interval_s
        self.table = table if table is not None else FlowTable()
        self.batch_size = batch_size
        self.stopping = threading.Event()
        self.receiver: UlogdReceiver | None = None
        self.run_started = time.time()
        self.sequence = 0
        self.sent_flows = 0
        self._next_try = 0.0  # after a receiver failed to start: not before this
        self._said_missing = False
        # The state the agent is about to apply (`prepare`): its groups are bound before its
        # NFLOG rules reach the kernel. A copy sent to a group nobody listens on is lost, so
        # binding only after the apply lost the first drops after a log was enabled.
        self._prepared: HostState | None = None
        self._lock = threading.Lock()
        self._ct_states: tuple[HostState | None, dict[str, str]] = (None, {})

    def run(self) -> None:
        try:
            while not self.stopping.wait(self.interval_s):
                self.tick()
        finally:
            self.close()

    def prepare(self, state: HostState) -> None:
        """Called by the agent before it applies `state` (`Agent.before_apply`): bind the NFLOG
        groups that state logs to, waiting until ulogd listens (only when they change)."""
        self._prepared = state
        self._keep()

    def tick(self) -> None:
        self._keep()
        self.flush()

    def _keep(self) -> None:
        with self._lock:
            self._keep_locked()

    def _keep_locked(self) -> None:
        try:
            self.keep_receiver()
        except UlogdMissing as exc:  # said once; installed later, it is found within a minute
            if not self._said_missing:
                log.warning("packet log: %s; logged ports' packets are not received", exc)
                self._said_missing = True
            self._next_try = time.monotonic() + MISSING_RETRY_S
        except Exception as exc:  # ulogd failing to start: say so, try again shortly
            log.warning("packet log: %s", exc)
            self._next_try = time.monotonic() + FAILED_RETRY_S

    def keep_receiver(self) -> None:
        # The newest state the agent tried (a failed apply leaves a listener bound to groups no
        # rule sends to: harmless), else the applied one.
        wanted = self._prepared if self._prepared is not None else self.state_of()
        groups = logged_groups(wanted)
        receiver = self.receiver
        if receiver is not None and (receiver.groups != groups or not receiver.alive):
            if not receiver.alive:  # started again a second later: a crash loop stays slow
                log.warning("packet log: ulogd ended: %s", receiver.log_text()[-300:])
                self._next_try = time.monotonic() + ENDED_RETRY_S
            receiver.stop()
            self.receiver = receiver = None
        if receiver is None and groups and time.monotonic() >= self._next_try:
            receiver = UlogdReceiver(self.runner, self.netns, groups, self.table.add)
            receiver.start()
            self.receiver = receiver
            log.info("packet log: receiving NFLOG groups %s", groups)

    def flush(self, now: float | None = None) -> int:
        """Send what the table has, in batches of at most `batch_size` flows; the number of
        batches sent."""
        flows, shed = self.table.drain(now)
        if not flows and not shed:
            return 0
        flows = with_ct_states(flows, self._port_ct_states())
        sent = 0
        for start in range(0, max(len(flows), 1), self.batch_size):
            chunk = tuple(flows[start : start + self.batch_size])
            self.sequence += 1
            batch = wire.FlowBatch(
                host=self.host, sequence=self.sequence, run=self.run_started,
                sent_at=time.time(), flows=chunk, shed=shed if start == 0 else 0,
            )  # fmt: skip
            try:
                self.send(batch.as_dict())
            except Exception as exc:  # the broker away: the next tick tries again
                log.warning("packet log: batch %s not sent: %s", self.sequence, exc)
                self.table.retry(chunk, batch.shed)
                continue
            sent += 1
            self.sent_flows += len(chunk)
        return sent

    def _port_ct_states(self) -> dict[str, str]:
        # The applied state decided the packets (the one about to be applied, before the
        # first apply); derived once per state, not per batch.
        state = self.state_of()
        if state is None:
            state = self._prepared
        cached, states = self._ct_states
        if state is not cached:
            states = ct_states(state)
            self._ct_states = (state, states)
        return states

    def close(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()
            self.receiver = None


def start(
    host: str,
    runner: CommandRunner,
    netns: str | None,
    state_of: Callable[[], HostState | None],
    send: Send,
    interval_s: float,
    table: FlowTable | None = None,
) -> PacketLog:
    thread = PacketLog(host, runner, netns, state_of, send, interval_s=interval_s, table=table)
    thread.start()
    return thread
