"""Cutting connections after an apply, off the agent's lock (a queue and one thread).

An apply must not wait for connection tracking: the new rules are in force the moment
iptables-restore returns, and a host with many connections or a large removed group would hold
every other sync (and the live counters) behind the cut. So the agent plans the cuts (pure,
`worker.conntrack.plan_cuts`), hands them here and returns; this thread runs them in bulk over
netlink (`sgweb.kernel.conntrack`), merging whatever piled up meanwhile into one batch.

Durability: the state an apply put in force is remembered in Redis (the agent's "applied
state", which a restarted agent compares against to cut what was removed while it was down)
only after that apply's cuts ran. An agent killed between its apply and its cut therefore
still finds the older state on restart and cuts again: no removed rule keeps its connections.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sgweb.kernel.conntrack import CutResult
from worker.conntrack import Cut

log = logging.getLogger(__name__)

CutFunction = Callable[[Sequence[Cut]], CutResult]


@dataclass
class CutJob:
    revision: int
    cuts: list[Cut]
    state: dict[str, Any] | None  # the applied state document, remembered after the cut
    queued_at: float = field(default_factory=time.monotonic)


class CutQueue:
    """Runs queued cuts in order on a daemon thread; `status()` says how far it got."""

    def __init__(
        self,
        cut: CutFunction,
        remember_state: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._cut = cut
        self._remember_state = remember_state
        self._jobs: list[CutJob] = []
        self._condition = threading.Condition()
        self._busy = False
        self._thread: threading.Thread | None = None
        self._status: dict[str, Any] = {"revision": None, "deleted": 0, "total_deleted": 0}

    def submit(self, revision: int, cuts: list[Cut], state: dict[str, Any] | None) -> None:
        with self._condition:
            self._jobs.append(CutJob(revision, cuts, state))
            self._status["pending"] = sum(len(job.cuts) for job in self._jobs)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="sgweb-conntrack-cuts", daemon=True
                )
                self._thread.start()
            self._condition.notify_all()

    def status(self) -> dict[str, Any]:
        with self._condition:
            return dict(self._status)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once every submitted job ran (tests and benchmarks use it)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._jobs or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._condition.wait(left)
            return True

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._jobs:
                    self._condition.wait()
                jobs, self._jobs = self._jobs, []
                self._busy = True
            try:
                self._run_batch(jobs)
            finally:
                with self._condition:
                    self._busy = False
                    self._status["pending"] = sum(len(job.cuts) for job in self._jobs)
                    self._condition.notify_all()

    def _run_batch(self, jobs: list[CutJob]) -> None:
        cuts = [cut for job in jobs for cut in job.cuts]
        result = CutResult(0, 0, 0, 0.0)
        if cuts:
            try:
                result = self._cut(cuts)
            except Exception as exc:  # a cut that fails must not stop later ones
                log.warning("conntrack cut failed: %s", exc)
                result = CutResult(0, 0, 0, 0.0, (str(exc),))
            waited = time.monotonic() - jobs[0].queued_at
            log.info(
                "cut %s conntrack entries for revision %s (%s cuts, %s dumps, %.1f ms, "
                "%.1f ms after the apply)",
                result.deleted, jobs[-1].revision, len(cuts), result.dumps,
                result.duration_s * 1000, waited * 1000,
            )  # fmt: skip
        with self._condition:
            self._status["revision"] = jobs[-1].revision
            if cuts:
                self._status.update(
                    last_cut_revision=jobs[-1].revision,
                    deleted=result.deleted,
                    total_deleted=self._status.get("total_deleted", 0) + result.deleted,
                    cuts=len(cuts),
                    duration_ms=round(result.duration_s * 1000, 3),
                    errors=list(result.errors[:5]),
                )
        state = next((job.state for job in reversed(jobs) if job.state is not None), None)
        if state is not None and self._remember_state is not None:
            try:
                self._remember_state(state)
            except Exception as exc:  # Redis down: a restart then cuts from an older state
                log.warning("could not store the applied state: %s", exc)
