"""Trace both directions of a flow with one monitor: a TRACE rule per direction.

`KernelTracer` marks packets with one match; a trace of a packet and its reply needs two (the
request's `-s A -d B` and the reply's `-s B -d A`), seen by one `xtables-monitor` so no packet is
reported twice. Both rules carry the tracer's tag and are removed afterwards, also on failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sgweb.kernel.ktrace import KernelPacket, KernelTracer, parse_monitor_output
from sgweb.kernel.netlinkready import wait_subscribed
from sgweb.kernel.runner import CommandRunner, ProcessHandle


class FlowTracer(KernelTracer):
    def __init__(
        self,
        runner: CommandRunner,
        netns: str | None,
        *,
        matches: Sequence[Sequence[str]],
        families: Iterable[int] = (4,),
        settle_s: float = 0.2,
        ready_timeout_s: float = 2.0,
    ) -> None:
        super().__init__(runner, netns, families=families, settle_s=settle_s)
        self.ready_timeout_s = ready_timeout_s
        self.ready_after_s: float | None = None  # how long the monitor took to subscribe
        self.matches = [tuple(match) for match in matches]
        self._rules: list[tuple[int, tuple[str, ...]]] = []

    def _flow_rule(self, family: int, match: tuple[str, ...], action: str) -> list[str]:
        self.match = match
        return self._rule(family, action)

    def start(self) -> FlowTracer:
        # Line-buffered, so `peek` sees each packet as it happens (a file is block-buffered).
        self._monitor = self.runner.spawn(
            ["stdbuf", "-oL", "xtables-monitor", "--trace"], netns=self.netns
        )
        try:
            self._wait_ready(self._monitor)
            for family in self.families:
                for match in self.matches:
                    self.runner.run(self._flow_rule(family, match, "-I"), netns=self.netns)
                    self._rules.append((family, match))
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

    def _cleanup(self) -> str:
        for family, match in self._rules:
            self.runner.run(self._flow_rule(family, match, "-D"), netns=self.netns, check=False)
        self._rules = []
        output = ""
        if self._monitor is not None:
            output = self._monitor.stop().stdout
            self._monitor = None
        return output

    def peek(self) -> list[KernelPacket]:
        """The packets traced so far, positions resolved, while the tracer keeps running."""
        if self._monitor is None:
            return []
        finished, self.packets = self.packets, parse_monitor_output(self._monitor.read_output()[0])
        try:
            self._resolve_positions()
            return self.packets
        finally:
            self.packets = finished

    def has_trace_rules(self) -> bool:
        """Whether any rule with this tracer's tag is still in the raw table (tests, safety)."""
        for family in self.families:
            tool = "iptables-save" if family == 4 else "ip6tables-save"
            saved = self.runner.run([tool, "-t", "raw"], netns=self.netns, check=False).stdout
            if self.tag in saved:
                return True
        return False
