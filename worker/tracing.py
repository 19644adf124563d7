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
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sgweb.firewall.ir import CompiledHost
from sgweb.firewall.model import HostState
from sgweb.firewall.trace.labels import rule_label
from sgweb.kernel.flowtrace import FlowTracer
from sgweb.kernel.ktrace import KernelPacket, KernelStep
from sgweb.kernel.runner import CommandRunner
from sgweb.kernel.traffic import PROBE_SCRIPT
from sgweb.wire import traces as protocol
from worker import router_trace
from worker.router_trace import Describe

log = logging.getLogger("sgweb.agent.trace")

Emit = Callable[[dict[str, Any]], None]
_one_at_a_time = threading.Lock()  # two traces' TRACE rules would mark each other's packets


def _direction_matches(request: protocol.ProofRequest) -> list[list[str]]:
    proto = ["-p", request.protocol]
    return [
        ["-s", request.src, "-d", request.dst, *proto],
        ["-s", request.dst, "-d", request.src, *proto],
    ]


def describe_step(
    step: KernelStep, family: int, compiled: CompiledHost | None, state: HostState | None
) -> dict[str, Any]:
    label, rule_id = "", None
    if step.event == "policy":
        label = f"{step.chain} policy {step.verdict}"
    elif compiled is not None and step.position is not None:
        table = compiled.family(family).table(step.table)
        chain = table.chain(step.chain) if table is not None else None
        if chain is not None and chain.owned and 0 < step.position <= len(chain.rules):
            rule = chain.rules[step.position - 1]
            label, rule_id = rule_label(rule, state), rule.origin.rule_id
    if not label:
        label = step.rule_text or f"{step.chain} rule {step.position}"
    return {
        "table": step.table,
        "chain": step.chain,
        "position": step.position,
        "event": step.event,
        "verdict": step.verdict,
        "label": label,
        "rule_id": rule_id,
    }


def _direction(packet: KernelPacket, request: protocol.ProofRequest) -> str | None:
    if (packet.src, packet.dst) == (request.src, request.dst):
        return "request"
    if (packet.src, packet.dst) == (request.dst, request.src):
        return "reply"
    return None


UNKNOWN = "unknown"
DEFINITE = ("ACCEPT", "DROP")


def kernel_verdict(directions: list[tuple[str, str | None]], lost: str | None = None) -> str | None:
    """DROP if any traversal of the request or reply was dropped; ACCEPT if a traversal of the
    request was accepted and nothing was dropped; "unknown" when the request was seen but no
    traversal of it reached a decision (the trace ended early: that is no evidence of ACCEPT);
    None when the kernel saw no request at all. A trace that `lost` events proves a DROP it
    showed, nothing else: the missing events may hold a drop, or the packet itself."""
    if any(verdict == "DROP" for _direction, verdict in directions):
        return "DROP"
    if lost:
        return UNKNOWN
    if any(d == "request" and v == "ACCEPT" for d, v in directions):
        return "ACCEPT"
    if any(direction == "request" for direction, _verdict in directions):
        return UNKNOWN
    return None


def agreement(kernel: str | None, static: str | None) -> bool | None:
    """Whether the kernel agreed; None when it gave no definite verdict ("unknown" never agrees
    and never disagrees: it proves nothing either way)."""
    if kernel not in DEFINITE:
        return None
    return kernel == static


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


def _check_source(runner: CommandRunner, request: protocol.ProofRequest) -> str | None:
    """Why the source namespace cannot send for this port (None: it can)."""
    listing = runner.run(["ip", "-o", "link", "show", "eth0"], netns=request.source_netns,
                         check=False)  # fmt: skip
    if listing.returncode != 0:
        return f"the lab VM namespace {request.source_netns} is not there"
    if request.source_mac and request.source_mac.lower() not in listing.stdout.lower():
        return f"{request.source_netns} is not the VM of this port (MAC differs)"
    return None


def _decider(steps: list[dict[str, Any]]) -> str:
    for step in reversed(steps):
        if step["verdict"] in ("DROP", "ACCEPT") and step["table"] == "filter":
            for earlier in reversed(steps[: steps.index(step) + 1]):
                if earlier["rule_id"] or "default drop" in earlier["label"]:
                    return cast(str, earlier["label"])
            return cast(str, step["label"])
    return "no decision seen"


class _PacketReporter:
    """Emits each traced traversal once, as soon as it has a verdict (or at the end)."""

    def __init__(
        self,
        request: protocol.ProofRequest,
        agent: Any,
        emit: Emit,
        describe: Describe | None = None,
    ) -> None:
        self.request = request
        self.host = agent.host
        applied = agent.applied
        self.compiled = applied.compiled if applied is not None else None
        self.state = applied.state if applied is not None else None
        # How a traversal's steps are put in words: the host's port chains, or (a router's
        # hop) the router's firewall.
        self.describe: Describe = describe or self._describe_host
        self.emit = emit
        self.reported: set[int] = set()
        self.directions: list[tuple[str, str | None]] = []
        self.deciding = ""
        self.lost: str | None = None  # why the trace that was reported is incomplete

    @property
    def verdict(self) -> str | None:
        return kernel_verdict(self.directions, self.lost)

    def report(self, packets: list[KernelPacket], *, final: bool) -> None:
        for position, packet in enumerate(packets):
            direction = _direction(packet, self.request)
            if direction is None or position in self.reported:
                continue
            if packet.verdict is None and not final:
                continue  # still on its way through the rules
            self.reported.add(position)
            steps = self.describe(packet)
            verdict = packet.verdict or "unknown"
            self.directions.append((direction, packet.verdict))
            if verdict == "DROP" or (not self.deciding and direction == "request"):
                self.deciding = _decider(steps)
            self.emit({"type": "trace-packet", "trace_id": self.request.trace_id,
                       "index": len(self.reported) - 1, "direction": direction,
                       "host": self.host, "steps": steps, "verdict": verdict})  # fmt: skip

    def _describe_host(self, packet: KernelPacket) -> list[dict[str, Any]]:
        return [
            describe_step(step, packet.family, self.compiled, self.state)
            for step in packet.steps
            if not step.is_trace_rule
        ]

    def next_attempt(self) -> None:
        # A new tracer numbers its traversals from 0 again.
        self.reported = set()

    @property
    def saw_request(self) -> bool:
        return any(direction == "request" for direction, _verdict in self.directions)

    @property
    def settled(self) -> bool:
        """Observed enough: a dropped request, or a request and its reply."""
        kinds = {direction for direction, _verdict in self.directions}
        dropped = any(v == "DROP" for _d, v in self.directions)
        return "request" in kinds and (dropped or "reply" in kinds)


def _observe(tracer: FlowTracer, reporter: _PacketReporter, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not reporter.settled:
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
        reporter.report(tracer.peek(), final=False)


class _Board:
    """Where the hosts of one trace meet: Redis keys under the agents' key prefix."""

    def __init__(self, client: Any, prefix: str, trace_id: str) -> None:
        self.client, self.prefix, self.trace_id = client, prefix, trace_id

    @classmethod
    def of(cls, agent: Any, trace_id: str) -> _Board | None:
        store = getattr(agent, "store", None)
        client, keys = getattr(store, "client", None), getattr(store, "keys", None)
        if client is None or keys is None:
            return None  # no Redis (unit tests with a stand-in agent): no other host to meet
        return cls(client, keys.prefix, trace_id)

    def put(self, host: str, what: str, value: dict[str, Any]) -> None:
        key = protocol.board_key(self.prefix, self.trace_id, host, what)
        self.client.set(key, json.dumps(value), ex=300)

    def get(self, host: str, what: str) -> dict[str, Any] | None:
        raw = self.client.get(protocol.board_key(self.prefix, self.trace_id, host, what))
        return json.loads(raw) if raw else None

    def wait(self, hosts: list[str], what: str, timeout: float) -> dict[str, dict[str, Any]]:
        """What each host left under `what`, waiting up to `timeout` for all of them."""
        found: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while True:
            for host in hosts:
                if host not in found and (value := self.get(host, what)) is not None:
                    found[host] = value
            if len(found) == len(hosts) or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)


class _Peers:
    """The prover's side of a multi-host proof: waits for the other hosts, collects their hops."""

    def __init__(self, request: protocol.ProofRequest, agent: Any) -> None:
        self.hosts = [
            hop["host"] for hop in request.hops if hop["host"] != agent.host and hop["traced"]
        ]
        self.board = _Board.of(agent, request.trace_id) if self.hosts else None
        self.host = agent.host
        self.missing: dict[str, str] = {}  # host -> why its hop was not traced
        self.waited = False

    def wait_ready(self) -> None:
        if self.waited or not self.hosts:
            return  # a retry finds the other hosts still tracing: no second wait
        self.waited = True
        if self.board is None:
            self.missing = dict.fromkeys(self.hosts, "no shared Redis to coordinate with it")
            return
        ready = self.board.wait(self.hosts, "ready", protocol.READY_TIMEOUT_S)
        for host in self.hosts:
            if host not in ready:
                why = f"its tracer was not ready within {protocol.READY_TIMEOUT_S:g} s"
                self.missing[host] = why

    def done(self) -> None:
        if self.board is not None:
            try:
                self.board.put(self.host, "done", {"at": time.time()})
            except Exception as exc:  # the hop hosts then stop at their own deadline
                log.warning("could not tell the other hosts trace %s is done: %s",
                            self.board.trace_id, exc)  # fmt: skip

    def results(self) -> dict[str, dict[str, Any]]:
        waiting = [host for host in self.hosts if host not in self.missing]
        found: dict[str, dict[str, Any]] = {}
        if self.board is not None and waiting:
            try:
                found = self.board.wait(waiting, "hop", protocol.HOP_RESULT_WAIT_S)
            except Exception as exc:
                log.warning("could not read the other hosts' hops: %s", exc)
        for host in waiting:
            if host not in found:
                self.missing[host] = "it did not report its hop"
            elif found[host].get("error"):
                self.missing[host] = f"its trace failed: {found[host]['error']}"
        return {host: hop for host, hop in found.items() if host not in self.missing}


def trace_hop(
    request: protocol.ProofRequest,
    agent: Any,
    emit: Emit,
    *,
    runner: Any | None = None,
    router_agent: Any | None = None,
) -> dict[str, Any]:
    """Trace this host's hop of a flow another host probes: say "ready" once the tracer listens,
    trace until the prover is done (bounded), then leave this hop's result for the prover. A
    router's hop (a network node's) is traced in that router's namespace."""
    runner = runner or agent.firewall.runner
    board = _Board.of(agent, request.trace_id)
    reporter = _PacketReporter(request, agent, emit)
    hop: dict[str, Any] = {"host": agent.host, "error": None}
    prover = request.prover_host or ""
    with _one_at_a_time:
        agent.pause_drift(protocol.HOP_WINDOW_S + 30)
        try:
            if board is None:
                raise RuntimeError("no shared Redis to meet the probing host")
            netns = agent.firewall.netns
            route = router_trace.router_hop(request, agent.host, router_agent)
            if route is not None:
                netns, reporter.describe = route.netns, route.describe
                reporter.emit = lambda message: emit({**message, "router": route.name})
            with _flow_traced(runner, netns, request, reporter) as tracer:
                board.put(agent.host, "ready", {"at": time.time()})
                deadline = time.monotonic() + protocol.HOP_WINDOW_S
                while time.monotonic() < deadline and board.get(prover, "done") is None:
                    time.sleep(0.1)
                    reporter.report(tracer.peek(), final=False)
        except Exception as exc:
            log.exception("hop of trace %s failed", request.trace_id)
            hop["error"] = str(exc)
        finally:
            agent.pause_drift(5)
    hop.update(
        kernel_verdict=reporter.verdict,
        traversals=len(reporter.directions),
        deciding=reporter.deciding,
        lost=reporter.lost,
    )
    if board is not None:
        try:
            board.put(agent.host, "hop", hop)
        except Exception as exc:
            log.warning("could not leave the hop of trace %s: %s", request.trace_id, exc)
    return hop


def _hop_agrees(kernel: str | None, static: str | None) -> bool | None:
    if static is None:
        # Static: the packet never gets here. Seeing nothing agrees; a decision here does not.
        return True if kernel is None else (False if kernel in DEFINITE else None)
    return agreement(kernel, static)


def _hop_rows(
    request: protocol.ProofRequest,
    own_host: str,
    reporter: _PacketReporter,
    others: dict[str, dict[str, Any]],
    missing: dict[str, str],
) -> tuple[list[dict[str, Any]], int]:
    """One row per planned hop (kernel verdict, deciding rule, agreement), and how many
    traversals were traced in all."""
    hops: list[dict[str, Any]] = []
    traversals = 0
    for planned in request.hops:
        host, static = planned["host"], planned.get("static")
        lost = None
        if host == own_host:
            kernel, deciding, lost = reporter.verdict, reporter.deciding, reporter.lost
            traced, why = True, ""
            traversals += len(reporter.directions)
        elif host in others:
            kernel, deciding = others[host].get("kernel_verdict"), others[host].get("deciding", "")
            traced, why, lost = True, "", others[host].get("lost")
            traversals += int(others[host].get("traversals") or 0)
        else:
            kernel, deciding, traced = None, "", False
            why = missing.get(host) or planned.get("why") or "it was not traced"
        hop_agrees = _hop_agrees(kernel, static) if traced else None
        hops.append({"host": host, "static": static, "kernel": kernel, "traced": traced,
                     "agrees": hop_agrees, "deciding": deciding, "why": why,
                     "lost": lost})  # fmt: skip
        if planned.get("router_id"):
            hops[-1]["router"] = planned.get("router") or planned["router_id"]
    return hops, traversals


def _combined_verdict(
    traced_hops: list[dict[str, Any]],
) -> tuple[str | None, bool | None, dict[str, Any] | None]:
    """(kernel verdict of the whole flow, whether it agrees, the hop that decided)."""
    kernels = [hop["kernel"] for hop in traced_hops]
    if "DROP" in kernels:
        verdict: str | None = "DROP"
    elif "ACCEPT" in kernels:
        verdict = UNKNOWN if UNKNOWN in kernels else "ACCEPT"
    else:
        verdict = UNKNOWN if UNKNOWN in kernels else None
    votes = [hop["agrees"] for hop in traced_hops]
    # Only traced hops count, and only when each gave a definite answer: an unknown hop leaves
    # the whole proof undecided rather than letting the other hops speak for it.
    agrees = False if False in votes else (True if votes and all(votes) else None)
    decider = next((hop for hop in traced_hops if hop["kernel"] == "DROP"), None)
    if decider is None and verdict == "ACCEPT":
        decider = traced_hops[-1]
    return verdict, agrees, decider


AGREEMENT_WORDS = {True: "agrees with", False: "contradicts", None: "cannot be compared with"}


def _verdict_sentence(
    request: protocol.ProofRequest,
    hops: list[dict[str, Any]],
    verdict: str | None,
    agrees: bool | None,
    decider: dict[str, Any] | None,
) -> list[str]:
    traced_hops = [hop for hop in hops if hop["traced"]]
    if verdict is None:
        return ["the kernel saw no packet of this flow on any traced host"]
    if verdict == UNKNOWN:
        lost = [f"{hop['host']}: {hop['lost']}" for hop in traced_hops if hop.get("lost")]
        if lost:
            return [f"a traced hop's trace is incomplete ({'; '.join(lost)}): nothing is proved"]
        return ["a traced hop saw the flow but no ACCEPT or DROP: nothing is proved"]
    place = (
        f" at {decider['host']} ({decider['deciding'] or 'no decision seen'})" if decider else ""
    )
    if len(traced_hops) == len(hops):
        parts = [f"kernel {verdict}{place} {AGREEMENT_WORDS[agrees]} the static verdict "
                 f"{request.static_verdict}"]  # fmt: skip
    else:
        # Part of the path is unproved: compare only what the kernel showed, hop by hop.
        plural = "s" if len(traced_hops) != 1 else ""
        parts = [
            f"kernel {verdict}{place} on the traced hop{plural}, which "
            f"{AGREEMENT_WORDS[agrees]} the static verdict of the same hop{plural}"
        ]
    if decider is not None:
        parts.append(f"hop {decider['host']} decided")
    return parts


def _untraced_router_drop(hops: list[dict[str, Any]], position: int) -> str | None:
    """What the traced hops around an untraced router say about the router's static drop: the
    packet left the host before it and no traced host after it saw the packet (None when they
    do not say that)."""
    router = hops[position]
    before = [hop for hop in hops[:position] if hop["traced"]]
    after = [hop for hop in hops[position + 1 :] if hop["traced"]]
    if router["static"] != "DROP" or not before or before[-1]["kernel"] != "ACCEPT":
        return None
    if any(hop["kernel"] is not None for hop in after):
        return None
    return (
        f"the packet left host {before[-1]['host']} towards router {router['router']} and was "
        "not seen arriving beyond it, consistent with the router's drop"
    )


def _hop_summary(
    request: protocol.ProofRequest,
    hops: list[dict[str, Any]],
    combined: tuple[str | None, bool | None, dict[str, Any] | None],
    traversals: int,
    probe_ok: bool | None,
    retried: str,
) -> str:
    parts = _verdict_sentence(request, hops, *combined)
    parts.append("per hop: " + ", ".join(
        f"{hop['host']} kernel {hop['kernel'] or 'nothing seen'} / static "
        f"{hop['static'] or 'not reached'}" if hop["traced"]
        else f"{hop['host']} not traced" for hop in hops
    ))  # fmt: skip
    for position, hop in enumerate(hops):
        if not hop["traced"] and hop.get("router"):
            parts.append(f"router {hop['router']} on {hop['host']} rests on the static verdict "
                         f"({hop['why']})")  # fmt: skip
            if (consistent := _untraced_router_drop(hops, position)) is not None:
                parts.append(consistent)
        elif not hop["traced"]:
            role = "destination" if hop is hops[-1] else "other"
            parts.append(f"{role} host {hop['host']}'s part rests on the static verdict "
                         f"({hop['why']})")  # fmt: skip
    parts.append(f"{traversals} traversal{'s' if traversals != 1 else ''} traced")
    if probe_ok is not None:
        parts.append("the probe was answered" if probe_ok else "the probe got no answer")
    summary = "; ".join(parts)
    return f"{summary} ({retried})" if retried else summary


def _hop_result(
    request: protocol.ProofRequest,
    own_host: str,
    reporter: _PacketReporter,
    others: dict[str, dict[str, Any]],
    missing: dict[str, str],
    probe_ok: bool | None,
    retried: str,
) -> dict[str, Any]:
    """The trace-result of a multi-host proof: each traced hop's kernel verdict against the
    static verdict of the same hop; hops that could not be traced rest on the static verdict."""
    hops, traversals = _hop_rows(request, own_host, reporter, others, missing)
    combined = _combined_verdict([hop for hop in hops if hop["traced"]])
    verdict, agrees, decider = combined
    if request.mode == protocol.MODE_PROBE:
        status = protocol.STATUS_DONE
    else:
        status = protocol.STATUS_OBSERVED if traversals else protocol.STATUS_TIMEOUT
    return {
        "type": "trace-result",
        "trace_id": request.trace_id,
        "status": status,
        "static_verdict": request.static_verdict,
        "kernel_verdict": verdict,
        "agrees": agrees,
        "summary": _hop_summary(request, hops, combined, traversals, probe_ok, retried),
        "at": time.time(),
        "probe_ok": probe_ok,
        "retried": bool(retried),
        "hops": hops,
        "decided_by": decider["host"] if decider else None,
        "untraced_hosts": [hop["host"] for hop in hops if not hop["traced"]],
    }


@contextmanager
def _flow_traced(
    runner: Any,
    netns: str | None,
    request: protocol.ProofRequest,
    reporter: _PacketReporter,
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


def _trace_probe(
    runner: CommandRunner,
    netns: str | None,
    request: protocol.ProofRequest,
    reporter: _PacketReporter,
    before_probe: Callable[[], None] | None = None,
    *,
    last: bool = True,
) -> tuple[bool, str | None]:
    """One probe under a fresh tracer; reports what the kernel saw (an incomplete trace only
    when this is the `last` attempt); returns whether the probe was answered and why the trace
    was incomplete (None: it was whole)."""
    with _flow_traced(runner, netns, request, reporter, report_lost=last) as tracer:
        if before_probe is not None:
            before_probe()  # the other hosts' tracers must be listening before anything is sent
        result = runner.run(_probe_argv(request), netns=request.source_netns,
                            check=False, timeout=15)  # fmt: skip
    reporter.next_attempt()
    return result.returncode == 0, tracer.lost


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
    reporter = _PacketReporter(request, agent, emit)
    status, summary, probe_ok, retried = protocol.STATUS_FAILED, "", None, ""
    peers = _Peers(request, agent)
    with _one_at_a_time:
        agent.pause_drift(request.observe_s + 30)
        try:
            problem = None
            if request.mode == protocol.MODE_PROBE:
                problem = _check_source(runner, request)
            if problem:
                summary = f"no proof: {problem}"
            elif request.mode == protocol.MODE_PROBE:
                probe_ok, lost = _trace_probe(
                    runner, netns, request, reporter, peers.wait_ready, last=False
                )
                if lost or not reporter.saw_request:
                    # A trace the monitor did not read whole, or a probe the kernel did not see
                    # at all (a lost packet), is no evidence: send it once more first.
                    retried = _retry_reason(lost, probe_ok)
                    probe_ok, _lost = _trace_probe(runner, netns, request, reporter)
            else:
                with _flow_traced(runner, netns, request, reporter) as tracer:
                    peers.wait_ready()
                    _observe(tracer, reporter, request.observe_s)
        except Exception as exc:
            log.exception("trace %s failed", request.trace_id)
            summary = f"the kernel trace failed: {exc}"
        finally:
            agent.pause_drift(5)
            peers.done()  # the other hosts stop tracing now, also when this proof failed
    directions = reporter.directions
    verdict = reporter.verdict
    if request.hops and not summary:
        others = peers.results()
        result = _hop_result(
            request, agent.host, reporter, others, peers.missing, probe_ok, retried
        )
        emit(result)
        return result
    if not summary:
        if request.mode == protocol.MODE_PROBE:
            status = protocol.STATUS_DONE
        else:
            status = protocol.STATUS_OBSERVED if directions else protocol.STATUS_TIMEOUT
        summary = _summary(request, verdict, reporter, probe_ok)
        if retried:
            summary += f" ({retried})"
    result = {
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
    emit(result)
    return result


def _retry_reason(lost: str | None, probe_ok: bool) -> str:
    answered = "was answered" if probe_ok else "got no answer"
    if lost:
        return (
            f"retried once: the trace of the first probe, which {answered}, was incomplete ({lost})"
        )
    return f"retried once: the kernel saw no packet of the first probe, which {answered}"


def _summary(
    request: protocol.ProofRequest,
    verdict: str | None,
    reporter: _PacketReporter,
    probe_ok: bool | None,
) -> str:
    deciding, seen = reporter.deciding, len(reporter.directions)
    if verdict is None:
        if request.mode == protocol.MODE_OBSERVE:
            return f"no matching traffic within {request.observe_s:g} s"
        return "the kernel saw no packet of this flow"
    if verdict == UNKNOWN and reporter.lost:
        return (
            f"the kernel trace is incomplete ({reporter.lost}): {seen} "
            f"traversal{'s' if seen != 1 else ''} seen, nothing is proved either way (static "
            f"verdict {request.static_verdict})"
        )
    if verdict == UNKNOWN:
        return (
            f"the kernel traced {seen} traversal{'s' if seen != 1 else ''} of this flow but saw "
            f"no ACCEPT or DROP: nothing is proved either way (static verdict "
            f"{request.static_verdict})"
        )
    agreement_text = "agrees with" if verdict == request.static_verdict else "contradicts"
    text = f"kernel {verdict} ({deciding}) {agreement_text} the static verdict "
    text += request.static_verdict
    text += f"; {seen} traversal{'s' if seen != 1 else ''} traced"
    if probe_ok is not None:
        text += "; the probe was answered" if probe_ok else "; the probe got no answer"
    if reporter.lost:
        text += f"; the trace is incomplete ({reporter.lost})"
    return text


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
