"""The one maintenance loop the port agent and the router agent share (`worker/maintenance.py`),
with stand-in agents: start-up first (again until it counts as done), then catch-up and drift
checks, a failing round logged and survived; and the router agent's catch-up."""

from __future__ import annotations

import logging
import threading
import types
from typing import Any

import pytest

from worker.maintenance import MaintenanceLoop
from worker.router_threads import RouterMaintenance

WAIT_S = 30.0  # generous: the machine is shared; nothing here asserts a duration


class StandIn:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.drift_checked = threading.Event()

    def check_drift(self) -> None:
        self.calls.append("drift")
        self.drift_checked.set()


class Scripted(MaintenanceLoop[StandIn]):
    """Start-up counts as done on its second try; the first catch-up fails."""

    def __init__(self, agent: StandIn) -> None:
        super().__init__(agent, poll_s=0.01, drift_s=0.01, name="test-maintenance")
        self.start_ups = 0
        self.catch_ups = 0

    def start_up(self) -> bool:
        self.start_ups += 1
        self.agent.calls.append("start-up")
        return self.start_ups >= 2

    def catch_up(self) -> None:
        self.catch_ups += 1
        self.agent.calls.append("catch-up")
        if self.catch_ups == 1:
            raise ConnectionError("redis restarting")


def _run_until(loop: MaintenanceLoop[Any], done: threading.Event) -> None:
    loop.start()
    try:
        assert done.wait(WAIT_S)
    finally:
        loop.stopping.set()
        loop.join(WAIT_S)
    assert not loop.is_alive()


def test_the_loop_retries_start_up_before_it_catches_up_or_checks_drift(caplog):
    agent = StandIn()
    loop = Scripted(agent)
    with caplog.at_level(logging.WARNING, logger="worker.maintenance"):
        _run_until(loop, agent.drift_checked)
    assert agent.calls[:2] == ["start-up", "start-up"]
    assert "start-up" not in agent.calls[2:]
    assert agent.calls[2] == "catch-up"


def test_a_failing_round_is_logged_under_the_loops_label_and_the_loop_goes_on(caplog):
    agent = StandIn()
    loop = Scripted(agent)
    with caplog.at_level(logging.WARNING, logger="worker.maintenance"):
        _run_until(loop, agent.drift_checked)  # the round after the failing one
    assert "maintenance: redis restarting" in caplog.text


def test_a_loop_without_drift_interval_never_checks_drift():
    agent = StandIn()
    caught_up = threading.Event()

    class NoDrift(MaintenanceLoop[StandIn]):
        def start_up(self) -> bool:
            return True

        def catch_up(self) -> None:
            if len(agent.calls) < 3:
                agent.calls.append("catch-up")
            else:
                caught_up.set()

    _run_until(NoDrift(agent, 0.01, 0, name="test-no-drift"), caught_up)
    assert agent.calls == ["catch-up"] * 3


class RouterStandIn(StandIn):
    def __init__(self, desired: int | None, applied: int | None) -> None:
        super().__init__()
        self.store = types.SimpleNamespace(desired_revision=lambda: desired)
        self.applied = types.SimpleNamespace(revision=applied) if applied is not None else None
        self.kernel_known = True
        self.synced = threading.Event()

    def full_sync(self, reason: str) -> Any:
        self.calls.append(f"full_sync {reason}")
        return types.SimpleNamespace(action="missing", revision=None)

    def sync(self, revision: int | None, reason: str) -> None:
        self.calls.append(f"sync {reason}")
        self.synced.set()


def test_the_router_loop_starts_with_a_full_sync_then_syncs_a_missed_revision():
    agent = RouterStandIn(desired=3, applied=2)
    _run_until(RouterMaintenance(agent, 0.01, 0), agent.synced)  # type: ignore[arg-type]
    assert agent.calls[:2] == [
        "full_sync agent start",
        "sync maintenance: missed router revision",
    ]


@pytest.mark.parametrize(("desired", "applied"), [(None, None), (3, 3)])
def test_the_router_loop_leaves_a_node_alone_that_has_nothing_new(desired, applied):
    agent = RouterStandIn(desired=desired, applied=applied)
    _run_until(RouterMaintenance(agent, 0.01, 0.01), agent.drift_checked)  # type: ignore[arg-type]
    assert not any(call.startswith("sync") for call in agent.calls)
    assert agent.calls[0] == "full_sync agent start"
