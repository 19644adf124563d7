"""Trace both directions of a flow with one monitor: a TRACE rule per direction.

`KernelTracer` marks packets with one match; a trace of a packet and its reply needs two (the
request's `-s A -d B` and the reply's `-s B -d A`), seen by one `xtables-monitor` so no packet is
reported twice. Both rules carry the tracer's tag and are removed afterwards, also on failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sgweb.kernel.ktrace import KernelPacket, KernelTracer, parse_monitor_output
from sgweb.kernel.runner import CommandRunner


class FlowTracer(KernelTracer):
    def __init__(
        self,
        runner: CommandRunner,
        netns: str | None,
        *,
        matches: Sequence[Sequence[str]],
        families: Iterable[int] = (4,),
        settle_s: float = 0.0,  # unused: start() waits for the subscription instead of sleeping
        ready_timeout_s: float = 2.0,
    ) -> None:
        super().__init__(runner, netns, families=families, ready_timeout_s=ready_timeout_s)
        self.matches = [tuple(match) for match in matches]

    def peek(self) -> list[KernelPacket]:
        """The packets traced so far, positions resolved, while the tracer keeps running."""
        if self._monitor is None:
            return []
        output = self._monitor.read_output()[0]
        # Only whole lines: the monitor may be writing the last one right now ("...:ACC").
        output = output[: output.rfind("\n") + 1]
        finished, self.packets = self.packets, parse_monitor_output(output)
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
