"""The agent's Celery application: ``celery -A worker.app worker -Q host.<name> --pool solo``.

Configured only by environment variables (see `worker.config`). One process per host, the solo
pool, so the task, the start-up sync, the heartbeat and the maintenance loop share the agent's
memory of what it applied; publishes reach it on its Redis nudge channels (`worker.nudges`, a
thread of its own, port and router channels). `python -m worker` starts it with the right options.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from sgweb.kernel.apply import HostFirewall
from sgweb.kernel.runner import default_runner
from sgweb.kernel.watch import KernelWatch
from sgweb.wire import accounting as accounting_wire
from sgweb.wire import packetlog as packetlog_wire
from sgweb.wire import routers as router_wire
from sgweb.wire import sync as protocol
from worker import (
    accounting,
    nudges,
    packetlog,
    router_accounting,
    router_io,
    router_threads,
    routers,
)
from worker.agent import Agent
from worker.config import AgentConfig
from worker.maintenance import MaintenanceLoop
from worker.store import RedisStore

log = logging.getLogger("sgweb.agent")

config = AgentConfig.from_env()

# No fix-ups: Celery's Django fix-up would set Django up (every app, the URL conf, the system
# checks) whenever DJANGO_SETTINGS_MODULE is inherited, as it is in a test run or a shell of the
# control plane: the agent never loads Django, and starts seconds faster for it.
app = Celery("sgweb-agent", broker=config.broker_url, set_as_current=True, fixups=[])
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_default_queue=config.queue,
    worker_pool="solo",
    worker_concurrency=1,
    worker_prefetch_multiplier=4,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,  # a Redis restart must not end the agent
    broker_transport_options={"socket_timeout": 5, "socket_connect_timeout": 2},
    worker_cancel_long_running_tasks_on_connection_loss=False,
)


class CeleryReporter:
    """Reports go to the control queue as tasks, by name (the agent imports no Django code)."""

    def __init__(self, celery: Celery, queue: str, host: str) -> None:
        self.celery = celery
        self.queue = queue
        self.host = host
        self._last_request = 0.0

    def apply(self, report: dict[str, Any]) -> None:
        self.celery.send_task(
            protocol.TASK_RECORD_APPLY, kwargs={"report": report}, queue=self.queue
        )

    def drift(self, report: dict[str, Any]) -> None:
        self.celery.send_task(
            protocol.TASK_RECORD_DRIFT, kwargs={"report": report}, queue=self.queue
        )

    def router_apply(self, report: dict[str, Any]) -> None:
        self.celery.send_task(
            router_wire.TASK_RECORD_ROUTER_APPLY, kwargs={"report": report}, queue=self.queue
        )

    def request_state(self, reason: str) -> None:
        # At most one request every few seconds: the control plane needs one to republish.
        now = time.monotonic()
        if now - self._last_request < 5:
            return
        self._last_request = now
        self.celery.send_task(
            protocol.TASK_REQUEST_STATE,
            kwargs={"host": self.host, "reason": reason},
            queue=self.queue,
        )


_agent: Agent | None = None
_agent_lock = threading.Lock()


def agent() -> Agent:
    global _agent
    with _agent_lock:
        if _agent is None:
            store = RedisStore(config.redis_url, config.host, config.key_prefix)
            firewall = HostFirewall(default_runner(), config.netns)
            reporter = CeleryReporter(app, config.control_queue, config.host)
            watch = KernelWatch(config.netns)  # the nf_tables generation: free drift checks
            _agent = Agent(config.host, store, firewall, reporter, watch=watch)
            _agent.drift_watch.full_every_s = config.drift_full_interval_s
        return _agent


_router_agent: routers.RouterAgent | None = None


def router_agent() -> routers.RouterAgent:
    """The network node's side (issue 16): same process, same lock as the port chains."""
    global _router_agent
    the_agent = agent()
    with _agent_lock:
        if _router_agent is None:
            runner = default_runner()
            plumb = (
                router_io.make_plumber(runner, config.router_bridge_netns, config.router_bridge)
                if config.router_plumb
                else None
            )
            _router_agent = routers.RouterAgent(
                config.host,
                router_io.RedisRouterStore(config.redis_url, config.host, config.key_prefix),
                runner,
                CeleryReporter(app, config.control_queue, config.host).router_apply,
                lock=the_agent.lock,
                netns_prefix=config.router_netns_prefix,
                plumb=plumb,
                unplumb=(lambda netns: router_io.unplumb(runner, netns)) if plumb else None,
            )
        return _router_agent


def send_accounting(document: dict[str, Any]) -> None:
    app.send_task(
        accounting_wire.TASK_RECORD_ACCOUNTING,
        kwargs={"deltas": document},
        queue=config.control_queue,
    )


def send_firewall_accounting(document: dict[str, Any]) -> None:
    app.send_task(
        accounting_wire.TASK_RECORD_FIREWALL_ACCOUNTING,
        kwargs={"deltas": document},
        queue=config.control_queue,
    )


def send_flows(document: dict[str, Any]) -> None:
    app.send_task(
        packetlog_wire.TASK_RECORD_FLOWS,
        kwargs={"batch": document},
        queue=config.control_queue,
    )


@app.task(name=protocol.TASK_SYNC, ignore_result=True)
def sync(revision: int | None = None, reason: str = "") -> dict[str, Any]:
    outcome = agent().sync(revision, reason)
    return {"action": outcome.action, "revision": outcome.revision}


@app.task(name=router_wire.TASK_ROUTER_SYNC, ignore_result=True)
def router_sync(revision: int | None = None, reason: str = "") -> dict[str, Any]:
    outcome = router_agent().sync(revision, reason)
    return {"action": outcome.action, "revision": outcome.revision}


from worker import tracing  # noqa: E402  (issue 5: the trace proof task, registered on `app`)

tracing.register(app, agent, config.control_queue, router_agent)


class Heartbeat(threading.Thread):
    def __init__(self, the_agent: Agent, every_s: float) -> None:
        super().__init__(name="sgweb-heartbeat", daemon=True)
        self.agent = the_agent
        self.every_s = every_s
        self.stopping = threading.Event()

    def beat(self) -> None:
        try:
            payload = self.agent.heartbeat_payload()
            if _router_agent is not None:
                payload.update(_router_agent.heartbeat_payload())
            self.agent.store.beat(payload, protocol.HEARTBEAT_TTL_S)
        except Exception as exc:
            log.warning("heartbeat failed: %s", exc)

    def run(self) -> None:
        while not self.stopping.is_set():
            self.beat()
            self.stopping.wait(self.every_s)


class Maintenance(MaintenanceLoop[Agent]):
    """Start-up full sync, then: catch missed revisions, and check for drift; the agent exits
    when the process that started it is gone."""

    log = log

    def __init__(self, the_agent: Agent, poll_s: float, drift_s: float) -> None:
        super().__init__(the_agent, poll_s, drift_s, name="sgweb-maintenance")

    def before_round(self) -> None:
        if protocol.owner_gone(config.owner_pid):
            log.warning("the process that started this agent is gone; exiting")
            with contextlib.suppress(Exception):
                self.agent.store.clear_heartbeat()
            os._exit(0)

    def start_up(self) -> bool:
        outcome = self.agent.full_sync("agent start")
        log.info("start-up sync: %s r%s", outcome.action, outcome.revision)
        return outcome.action in ("applied", "failed")

    def catch_up(self) -> None:
        wanted = self.agent.store.desired_revision()
        applied = self.agent.applied
        if wanted is None:
            self.agent.reporter.request_state("no desired state in Redis")
        elif applied is None or wanted > applied.revision or not self.agent.kernel_known:
            self.agent.sync(None, "maintenance: missed revision")


_threads: list[Any] = []


@worker_ready.connect
def _on_ready(**_: Any) -> None:
    the_agent = agent()
    heartbeat = Heartbeat(the_agent, config.heartbeat_interval_s)
    heartbeat.beat()  # beat before reading state: see sgweb.hostsync.publish
    heartbeat.start()
    maintenance = Maintenance(the_agent, config.poll_interval_s, config.drift_interval_s)
    maintenance.start()
    router_maintenance = router_threads.RouterMaintenance(
        router_agent(), config.poll_interval_s, config.drift_interval_s
    )
    router_maintenance.start()  # issue 16: a network node's routers
    # Publishes nudge on the host's channels (one PUBLISH each, ports and routers); the queue's
    # sync tasks stay for the reconciler's nudges, which must wait for an agent not listening.
    listener = nudges.start(
        the_agent, config.redis_url, config.host, config.key_prefix, routers=router_agent()
    )
    _threads.extend([heartbeat, maintenance, router_maintenance, listener])
    store = router_agent().store
    if isinstance(store, router_io.RedisRouterStore):  # counters while a router page watches
        router_counters = router_threads.RouterCounters(
            router_agent(), store.client, config.key_prefix
        )
        router_counters.start()
        _threads.append(router_counters)
    from worker import live  # issue 5: live counters for whatever browsers watch

    _threads.append(live.start(the_agent, config.redis_url, config.key_prefix))
    if config.accounting_interval_s > 0:  # issue 12: every counter, every interval
        _threads.append(
            accounting.start(
                the_agent, config.redis_url, config.key_prefix, send_accounting,
                config.accounting_interval_s, config.accounting_budget_ms,
            )
        )  # fmt: skip
        if isinstance(store, router_io.RedisRouterStore):  # issue 16: firewall rules too
            _threads.append(
                router_accounting.start(
                    router_agent(), store.client, config.key_prefix, send_firewall_accounting,
                    config.accounting_interval_s,
                )
            )  # fmt: skip
    if config.packet_log_interval_s > 0:  # issue 13: ulogd runs only while a port is logged
        packet_log = packetlog.start(
            config.host, default_runner(), config.netns,
            lambda: the_agent.applied.state if the_agent.applied else None,
            send_flows, config.packet_log_interval_s,
            packetlog.FlowTable(
                max_open=config.packet_log_max_flows,
                max_per_port=max(1, config.packet_log_max_flows // 4),
            ),
        )  # fmt: skip
        the_agent.before_apply = packet_log.prepare  # groups bound before their rules apply
        _threads.append(packet_log)
    log.info("agent for %s ready on queue %s (netns %s)", config.host, config.queue, config.netns)


@worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    for thread in _threads:
        thread.stopping.set()
    if _agent is not None:
        with contextlib.suppress(Exception):
            _agent.store.clear_heartbeat()  # a clean stop shows as down at once
