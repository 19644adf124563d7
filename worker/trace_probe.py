"""The probe runner of a trace: a scoped tracer on both directions of a flow, one real packet
sent from the lab VM's namespace under it (or real traffic watched for a bounded time), and
what the tracer saw handed to the reporter. The TRACE rules are always removed (the tracer's
`finally`); one trace at a time per agent."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sgweb.kernel.flowtrace import FlowTracer
from sgweb.kernel.runner import CommandRunner
from sgweb.kernel.traffic import PROBE_SCRIPT
from sgweb.wire import traces as protocol
from worker.trace_packets import PacketReporter

one_at_a_time = threading.Lock()  # two traces' TRACE rules would mark each other's packets


def _direction_matches(request: protocol.ProofRequest) -> list[list[str]]:
    proto = ["-p", request.protocol]
    return [
        ["-s", request.src, "-d", request.dst, *proto],
        ["-s", request.dst, "-d", request.src, *proto],
    ]


def _probe_argv(request: protocol.ProofRequest) -> list[str]:
    argv = [sys.executable, "-I", PROBE_SCRIPT]
    if request.protocol in ("icmp", "ipv6-icmp"):
        argv += ["icmp", request.dst, "--src", request.src, "--timeout", "1"]
        echo = 8 if request.family == 4 else 128
        if request.icmp_type is not None and request.icmp_type != echo:
            argv += ["--type", str(request.icmp_type), "--code", str(request.icmp_code or 0)]
        return argv
    kind = "tcp" if request.protocol == "tcp" else "udp"
    return [*argv, kind, request.dst, "--port", str(request.dport), "--src", request.src,
            "--timeout", "0.8"]  # fmt: skip


def check_source(runner: CommandRunner, request: protocol.ProofRequest) -> str | None:
    """Why the source namespace cannot send for this port (None: it can)."""
    listing = runner.run(["ip", "-o", "link", "show", "eth0"], netns=request.source_netns,
                         check=False)  # fmt: skip
    if listing.returncode != 0:
        return f"the lab VM namespace {request.source_netns} is not there"
    if request.source_mac and request.source_mac.lower() not in listing.stdout.lower():
        return f"{request.source_netns} is not the VM of this port (MAC differs)"
    return None


def observe(tracer: FlowTracer, reporter: PacketReporter, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not reporter.settled:
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
        reporter.report(tracer.peek(), final=False)


@contextmanager
def flow_traced(
    runner: Any,
    netns: str | None,
    request: protocol.ProofRequest,
    reporter: PacketReporter,
    *,
    report_lost: bool = True,
) -> Iterator[FlowTracer]:
    """A tracer on both directions of the request's flow, listening when the block starts; its
    TRACE rules are removed when the block ends, and what it saw is reported (final) if the
    block ended normally; an incomplete trace only when `report_lost` (else the caller, told
    by `tracer.lost`, traces again)."""
    tracer = FlowTracer(runner, netns, matches=_direction_matches(request),
                        families=(request.family,))  # fmt: skip
    tracer.start()  # returns once the monitor is subscribed to trace events
    try:
        yield tracer
    finally:
        packets = tracer.stop(linger_s=0.3)  # removes the TRACE rules
    if tracer.lost and not report_lost:
        return
    reporter.lost = tracer.lost
    reporter.report(packets, final=True)


def trace_probe(
    runner: CommandRunner,
    netns: str | None,
    request: protocol.ProofRequest,
    reporter: PacketReporter,
    before_probe: Callable[[], None] | None = None,
    *,
    last: bool = True,
) -> tuple[bool, str | None]:
    """One probe under a fresh tracer; reports what the kernel saw (an incomplete trace only
    when this is the `last` attempt); returns whether the probe was answered and why the trace
    was incomplete (None: it was whole)."""
    with flow_traced(runner, netns, request, reporter, report_lost=last) as tracer:
        if before_probe is not None:
            before_probe()  # the other hosts' tracers must be listening before anything is sent
        result = runner.run(_probe_argv(request), netns=request.source_netns,
                            check=False, timeout=15)  # fmt: skip
    reporter.next_attempt()
    return result.returncode == 0, tracer.lost


def retry_reason(lost: str | None, probe_ok: bool) -> str:
    answered = "was answered" if probe_ok else "got no answer"
    if lost:
        return (
            f"retried once: the trace of the first probe, which {answered}, was incomplete ({lost})"
        )
    return f"retried once: the kernel saw no packet of the first probe, which {answered}"
