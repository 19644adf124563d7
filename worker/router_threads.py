"""The network node agent's threads: connection cuts after an apply, its maintenance loop, and
the firewall rule counters a router page watches."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sgweb.firewall.fwaas.model import RouterState
from sgweb.kernel.router import RouterFirewall
from sgweb.wire import routers as router_wire
from worker.maintenance import MaintenanceLoop

if TYPE_CHECKING:  # the agent builds a RouterCuts; RouterMaintenance drives an agent
    from worker.routers import RouterAgent

log = logging.getLogger(__name__)


class RouterCuts:
    """Cuts the connections each changed router's new rules would not let start, in a daemon
    thread; a router queued again before its turn is cut once, against its newest state (the
    rules in force by then). A router whose namespace tracks no connection (`tracked` says 0)
    is skipped: listing them costs a ctnetlink socket and dump per family in its namespace
    (it was a `conntrack -L` process, ~10 ms of CPU each), which a rule change on 50 quiet
    routers need not pay 100 times."""

    def __init__(
        self,
        firewall: Callable[[str], RouterFirewall],
        tracked: Callable[[str], int | None] = lambda router_id: None,
    ) -> None:
        self.firewall = firewall
        self.tracked = tracked
        self.skipped_total = 0  # routers without a tracked connection, not listed
        self._pending: dict[str, RouterState] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self.cut_total = 0

    def submit(self, routers: list[RouterState]) -> None:
        if not routers:
            return
        with self._lock:
            for router in routers:
                self._pending[router.router.id] = router
            self._idle.clear()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sgweb-router-cuts", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once every queued router was cut (tests, benchmarks)."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while True:
                with self._lock:
                    if not self._pending:
                        self._idle.set()
                        break
                    router_id = min(self._pending)
                    router = self._pending.pop(router_id)
                try:
                    if self.tracked(router_id) == 0:
                        self.skipped_total += 1
                        continue
                    cut = self.firewall(router_id).cut_denied_connections(router)
                    self.cut_total += len(cut)
                    if cut:
                        log.info("cut %d connections on router %s", len(cut), router_id)
                except Exception as exc:  # the table unreadable: the new rules hold anyway
                    log.warning("could not cut connections on %s: %s", router_id, exc)


class RouterMaintenance(MaintenanceLoop["RouterAgent"]):
    """Start-up full apply of the stored router state, then: catch missed router revisions and
    repair drift of router chains. Apart from the port path's loop, so that a network node's
    routers are not held up by its port chains (and a compute host pays one Redis GET a poll)."""

    label = "router maintenance"
    log = log

    def __init__(self, agent: RouterAgent, poll_s: float, drift_s: float) -> None:
        super().__init__(agent, poll_s, drift_s, name="sgweb-router-maintenance")

    def start_up(self) -> bool:
        outcome = self.agent.full_sync("agent start")
        if outcome.action != "missing":
            log.info("router start-up sync: %s r%s", outcome.action, outcome.revision)
        return True

    def catch_up(self) -> None:
        wanted = self.agent.store.desired_revision()
        applied = self.agent.applied
        if wanted is None:
            return
        if applied is None or wanted > applied.revision or not self.agent.kernel_known:
            self.agent.sync(None, "maintenance: missed router revision")


class RouterCounters(threading.Thread):
    """The routers' firewall rule counters for the router page: read (one save per family and
    router) only while a browser watches this node (`wire.router_keys(...).watched`), written
    to Redis with an expiry once a `wire.HITS_EVERY_S`."""

    def __init__(self, agent: RouterAgent, client: Any, prefix: str) -> None:
        super().__init__(name="sgweb-router-counters", daemon=True)
        self.agent = agent
        self.client = client
        self.keys = router_wire.router_keys(agent.host, prefix)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(router_wire.HITS_EVERY_S):
            try:
                if self.client.exists(self.keys.watched):
                    self.publish()
            except Exception as exc:  # Redis restarting, a namespace going: next tick
                log.warning("router counters: %s", exc)

    def publish(self) -> None:
        summed: dict[str, dict[str, tuple[int, int]]] = {}
        for router_id, hits in self.agent.rule_hits().items():
            rules = summed.setdefault(router_id, {})
            for hit in hits:
                packets, size = rules.get(hit.origin.rule_id, (0, 0))
                rules[hit.origin.rule_id] = (
                    packets + hit.counter.packets,
                    size + hit.counter.bytes,
                )
        document = router_wire.hits_document(time.time(), summed)
        self.client.set(self.keys.hits, json.dumps(document), ex=router_wire.HITS_TTL_S)

    def stop(self) -> None:
        self.stopping.set()
