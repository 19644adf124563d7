"""The kernel's own account of a packet's path: TRACE + `xtables-monitor --trace` (nf_tables).

`KernelTracer` marks matching packets with a `-j TRACE` rule at the top of the raw table's
PREROUTING (scoped by the caller's match arguments, tagged with a comment so exactly that rule is
removed afterwards), listens with `xtables-monitor --trace` in the namespace, and turns its
output into ordered steps: every rule that matched, by chain and position, and the policies
applied. Positions come from nft rule handles (`nft -a list chain`), whose order is the rule
order. The kernel notes measured this method as the one that gives the exact per-rule path.

A trace is only as whole as the monitor's reading of it (see `netlinkready`): its socket gets a
receive buffer that holds a probe's burst, `stop` waits until it has read and printed every
queued event before stopping it, and stops it before the TRACE rules go (it asks the kernel for
each traced rule's text, and a rule deleted under it makes it exit). Whatever still went wrong
(events dropped, the monitor gone early) is said in `lost`: such a trace is not evidence.
"""

from __future__ import annotations

import logging
import re
import secrets
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sgweb.kernel.netlinkready import (
    grow_receive_buffer,
    trace_socket,
    wait_subscribed,
    waiting_for_events,
)
from sgweb.kernel.runner import CommandResult, CommandRunner, ProcessHandle

log = logging.getLogger(__name__)

NFPROTO = {"2": 4, "10": 6}
RETURN_VERDICT = "0xfffffffb"  # NFT_RETURN as xtables-monitor prints it
_HANDLE = re.compile(r"# handle (\d+)\s*$")

# The comment that marks a trace's own `-j TRACE` rule (drift checks know it as ours).
TRACE_TAG_PREFIX = "sgweb-trace-"


@dataclass(frozen=True, slots=True)
class KernelStep:
    table: str
    chain: str
    event: str  # "rule" | "policy"
    verdict: str  # CONTINUE, RETURN, ACCEPT, DROP, JUMP:<chain>, ... (policy: ACCEPT/DROP)
    handle: int | None = None
    position: int | None = None  # 1-based position in the chain (rules only)
    rule_text: str = ""

    @property
    def is_trace_rule(self) -> bool:
        return self.rule_text.endswith("-j TRACE")


@dataclass(slots=True)
class KernelPacket:
    """One traversal of the host's netfilter by one packet (raw then filter)."""

    trace_id: str
    family: int
    headers: list[dict[str, str]] = field(default_factory=list)
    steps: list[KernelStep] = field(default_factory=list)

    @property
    def src(self) -> str | None:
        return self.headers[0].get("SRC") if self.headers else None

    @property
    def dst(self) -> str | None:
        return self.headers[0].get("DST") if self.headers else None

    @property
    def verdict(self) -> str | None:
        """ACCEPT or DROP as the filter table decided (None if the trace saw no decision)."""
        for step in reversed(self.steps):
            if step.table != "filter":
                continue
            if step.verdict in ("ACCEPT", "DROP"):
                return step.verdict
        return None

    def matched(self, *, include_trace_rule: bool = False) -> list[KernelStep]:
        return [
            step
            for step in self.steps
            if step.event == "rule" and (include_trace_rule or not step.is_trace_rule)
        ]


def _header_fields(text: str) -> dict[str, str]:
    fields = {}
    for token in text.split():
        if "=" in token:
            key, value = token.split("=", 1)
            fields[key] = value
    return fields


def parse_monitor_output(output: str) -> list[KernelPacket]:
    """`xtables-monitor --trace` lines -> packets in the order they were first seen.

    A packet re-entering PREROUTING (the second bridge of a qbr-per-port path) starts a new
    traversal even if the kernel reuses its trace id.
    """
    packets: list[KernelPacket] = []
    current: dict[str, KernelPacket] = {}
    pending_header: dict[str, dict[str, str]] = {}
    for raw_line in output.splitlines():
        line = raw_line.strip()
        if line.startswith("PACKET:"):
            parts = line.split(None, 3)
            if len(parts) >= 3:
                pending_header[parts[2]] = _header_fields(parts[3] if len(parts) > 3 else "")
            continue
        if not line.startswith("TRACE:"):
            continue
        parts = line.split(None, 3)
        if len(parts) < 4:
            continue
        _, nfproto, trace_id, rest = parts
        location, _, rule_text = rest.partition("  ")
        pieces = location.split(":")
        if len(pieces) < 4:
            continue
        table, chain, event = pieces[0], pieces[1], pieces[2]
        if event == "rule":
            handle = int(pieces[3], 16)
            verdict = ":".join(pieces[4:])
            if verdict == RETURN_VERDICT:
                verdict = "RETURN"
            step = KernelStep(table, chain, event, verdict, handle, None, rule_text.strip())
        else:
            step = KernelStep(table, chain, event, ":".join(pieces[3:]))
        packet = current.get(trace_id)
        starts_over = (
            packet is not None
            and table == "raw"
            and any(existing.table == "filter" for existing in packet.steps)
        )
        if packet is None or starts_over:
            packet = KernelPacket(trace_id, NFPROTO.get(nfproto, 0))
            current[trace_id] = packet
            packets.append(packet)
        header = pending_header.pop(trace_id, None)
        if header is not None:
            packet.headers.append(header)
        packet.steps.append(step)
    return packets


class KernelTracer:
    """Trace packets matching `match` (iptables match arguments) in one namespace.

    Use as a context manager around the traffic; `packets` holds the result afterwards.
    """

    def __init__(
        self,
        runner: CommandRunner,
        netns: str | None,
        *,
        match: Sequence[str] = (),
        families: Iterable[int] = (4, 6),
        ready_timeout_s: float = 2.0,
    ) -> None:
        self.runner = runner
        self.netns = netns
        self.matches = [tuple(match)]  # one TRACE rule per match and family
        self.families = tuple(families)
        self.ready_timeout_s = ready_timeout_s
        self.ready_after_s: float | None = None  # how long the monitor took to subscribe
        self.receive_buffer: int | None = None  # the monitor socket's buffer, once grown
        self.lost: str | None = None  # why the trace is incomplete (None: the monitor read all)
        self.tag = f"{TRACE_TAG_PREFIX}{secrets.token_hex(4)}"
        self.packets: list[KernelPacket] = []
        self._monitor: ProcessHandle | None = None
        self._inserted: list[tuple[int, tuple[str, ...]]] = []

    def _rule(self, family: int, match: Sequence[str], action: str) -> list[str]:
        tool = "iptables" if family == 4 else "ip6tables"
        position = ["1"] if action == "-I" else []
        return [
            tool, "-w", "-t", "raw", action, "PREROUTING", *position, *match,
            "-m", "comment", "--comment", self.tag, "-j", "TRACE",
        ]  # fmt: skip

    def start(self) -> KernelTracer:
        # Line-buffered, so `peek` sees each packet as it happens (a file is block-buffered).
        self._monitor = self.runner.spawn(
            ["stdbuf", "-oL", "xtables-monitor", "--trace"], netns=self.netns
        )
        try:
            self._wait_ready(self._monitor)
            for family in self.families:
                for match in self.matches:
                    self.runner.run(self._rule(family, match, "-I"), netns=self.netns)
                    self._inserted.append((family, match))
        except BaseException:
            self._cleanup()
            raise
        return self

    def _wait_ready(self, monitor: ProcessHandle) -> None:
        # xtables-monitor prints nothing once subscribed, and a fixed sleep lost the first packet
        # on a busy host: ask the kernel whether its socket joined the trace group.
        pid = getattr(monitor, "pid", None)
        if not isinstance(pid, int):
            return  # a scripted process in unit tests: no kernel to ask, nothing to race
        self.ready_after_s = wait_subscribed(
            pid, timeout=self.ready_timeout_s, alive=lambda: monitor.poll() is None
        )
        try:
            self.receive_buffer = grow_receive_buffer(pid)
        except OSError as exc:  # traced all the same; a burst may then overrun it (see `lost`)
            log.warning("trace monitor keeps its default receive buffer: %s", exc)

    def _cleanup(self) -> CommandResult | None:
        # The monitor first: it looks each traced rule up by handle, and one deleted before it
        # printed that rule's events makes it exit ("error: No such file or directory").
        result = None
        if self._monitor is not None:
            result = self._monitor.stop()
            self._monitor = None
        for family, match in self._inserted:
            self.runner.run(self._rule(family, match, "-D"), netns=self.netns, check=False)
        self._inserted = []
        return result

    def _drain(self, timeout_s: float) -> int:
        """Wait until the monitor has read and printed every queued event (bounded); returns
        how many events the kernel dropped for want of room in its receive queue."""
        monitor = self._monitor
        pid = getattr(monitor, "pid", None)
        if monitor is None or not isinstance(pid, int):
            return 0  # a scripted process in unit tests: its output is all there is
        deadline = time.monotonic() + timeout_s
        drops, last_output, quiet_since = 0, -1, time.monotonic()
        while monitor.poll() is None:
            found = trace_socket(pid)
            if found is None:
                break
            sock, fd = found
            drops = sock.drops
            if sock.rmem == 0:
                waiting = waiting_for_events(pid, fd)
                if waiting:
                    break
                if waiting is None:  # no word from the kernel: quiet output for 0.2 s will do
                    size = len(monitor.read_output()[0])
                    if size != last_output:
                        last_output, quiet_since = size, time.monotonic()
                    elif time.monotonic() - quiet_since >= 0.2:
                        break
            if time.monotonic() >= deadline:
                self.lost = f"the trace monitor had not read every event after {timeout_s:g} s"
                break
            time.sleep(0.01)
        return drops

    def _judge(self, result: CommandResult | None, exited_early: bool, drops: int) -> None:
        if result is not None and (exited_early or result.returncode not in (0, -signal.SIGTERM)):
            why = result.stderr.strip() or f"exit status {result.returncode}"
            self.lost = f"the trace monitor stopped early: {why}"
        elif drops:
            self.lost = f"the kernel dropped {drops} trace events (the monitor's queue was full)"

    def stop(self, *, linger_s: float = 0.1, drain_timeout_s: float = 5.0) -> list[KernelPacket]:
        time.sleep(linger_s)  # the probe's last packets may still be crossing the bridges
        drops = self._drain(drain_timeout_s)
        exited_early = self._monitor is not None and self._monitor.poll() is not None
        result = self._cleanup()
        self._judge(result, exited_early, drops)
        if self.lost:
            log.warning("kernel trace %s is incomplete: %s", self.tag, self.lost)
        self.packets = parse_monitor_output(result.stdout if result is not None else "")
        self._resolve_positions()
        return self.packets

    def __enter__(self) -> KernelTracer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _resolve_positions(self) -> None:
        # Rule handles -> positions, one `nft -a list chain` per chain seen.
        wanted = {
            (packet.family, step.table, step.chain)
            for packet in self.packets
            for step in packet.steps
            if step.event == "rule"
        }
        positions: dict[tuple[int, str, str], dict[int, int]] = {}
        for family, table, chain in wanted:
            nft_family = "ip" if family == 4 else "ip6"
            listing = self.runner.run(
                ["nft", "-a", "list", "chain", nft_family, table, chain],
                netns=self.netns,
                check=False,
            ).stdout
            handles: dict[int, int] = {}
            for line in listing.splitlines():
                if line.strip().startswith(("chain ", "table ")):
                    continue
                found = _HANDLE.search(line)
                if found:
                    handles[int(found.group(1))] = len(handles) + 1
            positions[(family, table, chain)] = handles
        for packet in self.packets:
            packet.steps = [
                step
                if step.event != "rule"
                else KernelStep(
                    step.table,
                    step.chain,
                    step.event,
                    step.verdict,
                    step.handle,
                    positions.get((packet.family, step.table, step.chain), {}).get(
                        step.handle or -1
                    ),
                    step.rule_text,
                )
                for step in packet.steps
            ]
