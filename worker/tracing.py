"""The agent's side of a trace: prove the static verdict with the kernel's own account.

On a lab host the source VM's namespace sends one real packet (an ICMP echo, a TCP SYN, a UDP
datagram, `sgweb.kernel.probe`) while a scoped TRACE rule per direction marks the request and its
reply and `xtables-monitor --trace` reports their paths (`sgweb.kernel.flowtrace`). Elsewhere
nothing is sent: the same tracing watches real traffic between the two addresses for a bounded
time. Each traversal becomes a `trace-packet` message, its steps labelled with the agent's
compiled rules; the `trace-result` says whether the kernel agreed. The TRACE rules are always
removed (the tracer's `finally`), and drift checks hold off meanwhile. A trace the monitor did not
read whole (`KernelTracer.lost`) is no evidence that a packet passed: a probe traced so is sent
again once, and what stays incomplete proves at most a DROP it did show.

The parts: the verdict arithmetic (`worker/trace_verdict.py`), the packets in words
(`worker/trace_packets.py`), the probe runner (`worker/trace_probe.py`), the hosts of a
multi-host proof meeting in Redis and a hop host's side (`worker/trace_hops.py`), the result in
words (`worker/trace_summary.py`). This module runs one proof and registers its task.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sgweb.wire import traces as protocol
from worker import router_trace
from worker.trace_hops import Peers, trace_hop
from worker.trace_packets import Emit, PacketReporter
from worker.trace_probe import (
    check_source,
    flow_traced,
    observe,
    one_at_a_time,
    retry_reason,
    trace_probe,
)
from worker.trace_summary import hop_result, single_host_summary
from worker.trace_verdict import agreement

log = logging.getLogger("sgweb.agent.trace")


def prove(
    request: protocol.ProofRequest,
    agent: Any,
    emit: Emit,
    *,
    runner: Any | None = None,
    router_agent: Any | None = None,
) -> dict[str, Any]:
    """Run one proof and emit its messages as they happen; returns the trace-result (for a
    ROLE_HOP request: this host's hop result, left for the prover in Redis)."""
    runner = runner or agent.firewall.runner
    if request.role == protocol.ROLE_HOP:
        return trace_hop(request, agent, emit, runner=runner, router_agent=router_agent)
    netns = agent.firewall.netns
    reporter = PacketReporter(request, agent, emit)
    peers = Peers(request, agent)
    failed, probe_ok, retried = _trace(request, agent, runner, netns, reporter, peers)
    if request.hops and not failed:
        others = peers.results()
        result = hop_result(request, agent.host, reporter, others, peers.missing, probe_ok, retried)
    else:
        result = _single_host_result(request, reporter, failed, probe_ok, retried)
    emit(result)
    return result


def _trace(
    request: protocol.ProofRequest,
    agent: Any,
    runner: Any,
    netns: str | None,
    reporter: PacketReporter,
    peers: Peers,
) -> tuple[str, bool | None, str]:
    """Probe (or observe) under the agent's one trace lock, drift checks held off meanwhile;
    returns why there is no proof ("" when there is one), whether the probe was answered, and
    why it was sent again ("" when it was not)."""
    failed, probe_ok, retried = "", None, ""
    with one_at_a_time:
        agent.pause_drift(request.observe_s + 30)
        try:
            problem = None
            if request.mode == protocol.MODE_PROBE:
                problem = check_source(runner, request)
            if problem:
                failed = f"no proof: {problem}"
            elif request.mode == protocol.MODE_PROBE:
                probe_ok, lost = trace_probe(
                    runner, netns, request, reporter, peers.wait_ready, last=False
                )
                if lost or not reporter.saw_request:
                    # A trace the monitor did not read whole, or a probe the kernel did not see
                    # at all (a lost packet), is no evidence: send it once more first.
                    retried = retry_reason(lost, probe_ok)
                    probe_ok, _lost = trace_probe(runner, netns, request, reporter)
            else:
                with flow_traced(runner, netns, request, reporter) as tracer:
                    peers.wait_ready()
                    observe(tracer, reporter, request.observe_s)
        except Exception as exc:
            log.exception("trace %s failed", request.trace_id)
            failed = f"the kernel trace failed: {exc}"
        finally:
            agent.pause_drift(5)
            peers.done()  # the other hosts stop tracing now, also when this proof failed
    return failed, probe_ok, retried


def _single_host_result(
    request: protocol.ProofRequest,
    reporter: PacketReporter,
    failed: str,
    probe_ok: bool | None,
    retried: str,
) -> dict[str, Any]:
    """The trace-result of a proof on this host alone (or of one that failed)."""
    status, summary, verdict = protocol.STATUS_FAILED, failed, reporter.verdict
    if not summary:
        if request.mode == protocol.MODE_PROBE:
            status = protocol.STATUS_DONE
        else:
            status = protocol.STATUS_OBSERVED if reporter.directions else protocol.STATUS_TIMEOUT
        summary = single_host_summary(request, verdict, reporter, probe_ok)
        if retried:
            summary += f" ({retried})"
    return {
        "type": "trace-result",
        "trace_id": request.trace_id,
        "status": status,
        "static_verdict": request.static_verdict,
        "kernel_verdict": verdict,
        "agrees": agreement(verdict, request.static_verdict),
        "summary": summary,
        "at": time.time(),
        "probe_ok": probe_ok,
        "retried": bool(retried),
    }


def register(
    app: Any,
    get_agent: Callable[[], Any],
    control_queue: str,
    get_router_agent: Callable[[], Any] | None = None,
) -> None:
    """Register the proof task on the agent's Celery app; messages go to the control queue.
    `get_router_agent`: the network node's side, whose routers' namespaces a router's hop
    traces."""

    def emit(message: dict[str, Any]) -> None:
        try:
            app.send_task(
                protocol.TASK_RECORD_EVENT,
                kwargs={"trace_id": message["trace_id"], "message": message},
                queue=control_queue,
            )
        except Exception as exc:
            log.warning("could not report trace message: %s", exc)

    @app.task(name=protocol.TASK_PROVE, ignore_result=True)
    def prove_trace(request: dict[str, Any]) -> None:
        # A thread, so that an observation window does not hold up the host's sync tasks.
        wanted = protocol.ProofRequest.from_dict(request)
        routers = None
        if get_router_agent is not None and router_trace.own_router_hop(wanted, get_agent().host):
            routers = get_router_agent()
        threading.Thread(
            target=prove,
            args=(wanted, get_agent(), emit),
            kwargs={"router_agent": routers},
            name="sgweb-trace",
            daemon=True,
        ).start()
