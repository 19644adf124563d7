"""The hosts of a multi-host trace meeting in Redis: the prover waits until the other hosts'
tracers listen and collects their hops; a hop host (a router's hop: in the router's namespace
on its network node) traces until the prover is done and leaves its hop for it."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from sgweb.wire import traces as protocol
from worker import router_trace
from worker.trace_packets import Emit, PacketReporter
from worker.trace_probe import flow_traced, one_at_a_time

log = logging.getLogger("sgweb.agent.trace")


class Board:
    """Where the hosts of one trace meet: Redis keys under the agents' key prefix."""

    def __init__(self, client: Any, prefix: str, trace_id: str) -> None:
        self.client, self.prefix, self.trace_id = client, prefix, trace_id

    @classmethod
    def of(cls, agent: Any, trace_id: str) -> Board | None:
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


class Peers:
    """The prover's side of a multi-host proof: waits for the other hosts, collects their hops."""

    def __init__(self, request: protocol.ProofRequest, agent: Any) -> None:
        self.hosts = [
            hop["host"] for hop in request.hops if hop["host"] != agent.host and hop["traced"]
        ]
        self.board = Board.of(agent, request.trace_id) if self.hosts else None
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
    board = Board.of(agent, request.trace_id)
    reporter = PacketReporter(request, agent, emit)
    hop: dict[str, Any] = {"host": agent.host, "error": None}
    prover = request.prover_host or ""
    with one_at_a_time:
        agent.pause_drift(protocol.HOP_WINDOW_S + 30)
        try:
            if board is None:
                raise RuntimeError("no shared Redis to meet the probing host")
            netns = agent.firewall.netns
            route = router_trace.router_hop(request, agent.host, router_agent)
            if route is not None:
                netns, reporter.describe = route.netns, route.describe
                reporter.emit = lambda message: emit({**message, "router": route.name})
            with flow_traced(runner, netns, request, reporter) as tracer:
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
