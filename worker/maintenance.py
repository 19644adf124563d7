"""The maintenance loop the port agent and the network node's router agent share: a start-up
sync (tried every second until it counts as done), then a catch-up poll for missed revisions
every `poll_s` and a drift check every `drift_s` (0: none). A failing round (Redis restarting,
a command failing) is logged and tried again at the next tick. Each agent's loop says what its
start-up sync and catch-up are; the timing is the same for both."""

from __future__ import annotations

import logging
import threading
import time
from typing import Generic, Protocol, TypeVar


class Maintained(Protocol):
    def check_drift(self) -> object: ...


A = TypeVar("A", bound=Maintained)


class MaintenanceLoop(threading.Thread, Generic[A]):
    """One agent's maintenance thread; subclasses say how it starts up and catches up."""

    label = "maintenance"  # what its warnings start with
    log = logging.getLogger(__name__)

    def __init__(self, agent: A, poll_s: float, drift_s: float, *, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.agent = agent
        self.poll_s = poll_s
        self.drift_s = drift_s
        self.stopping = threading.Event()

    def start_up(self) -> bool:
        """The start-up sync; True once it counts as done (else it is tried again)."""
        raise NotImplementedError

    def catch_up(self) -> None:
        """Apply a revision that was published while no task reached the agent."""
        raise NotImplementedError

    def before_round(self) -> None:
        """Runs at every tick, outside the round's error handling (the port agent: exit when
        the process that started it is gone)."""

    def run(self) -> None:
        started = False
        last_drift = last_poll = time.monotonic()
        # Wake for whichever comes first: a drift check is cheap enough to run every few seconds.
        tick = min(self.poll_s, self.drift_s) if self.drift_s > 0 else self.poll_s
        while not self.stopping.is_set():
            self.before_round()
            try:
                if not started:
                    started = self.start_up()
                else:
                    if time.monotonic() - last_poll >= self.poll_s:
                        last_poll = time.monotonic()
                        self.catch_up()
                    if self.drift_s > 0 and time.monotonic() - last_drift >= self.drift_s:
                        last_drift = time.monotonic()
                        self.agent.check_drift()
            except Exception as exc:  # Redis restarting, a command failing: try again later
                self.log.warning("%s: %s", self.label, exc)
            self.stopping.wait(tick if started else 1.0)
