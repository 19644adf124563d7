"""The host agent's core: converge the kernel to the newest desired state, report, repair drift.

Thin on purpose: decode (codec), compile and diff (sgweb.firewall), apply and read back
(sgweb.kernel.apply.HostFirewall), report (a `Reporter`). Everything is serialised by one lock,
because Celery tasks, the start-up sync and the maintenance loop all want the kernel.

Revisions: the agent remembers the revision and digest it last applied. A sync for a revision it
already has is a no-op without touching Redis; otherwise it reads the *newest* stored state,
so a burst of nudges coalesces into one apply. A stored revision at or below the applied one is
never applied (an older revision never overwrites a newer one).

Full applies (agent start, after an apply whose rollback failed, drift repair) re-declare every
chain we own, put back the built-in jumps, and remove chains and sets of ours that the desired
state no longer has, so whatever an earlier agent or a crash left behind is cleaned up.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sgweb.firewall import codec, manifest
from sgweb.firewall.compiler import CompileCache, compile_host
from sgweb.firewall.errors import FirewallError
from sgweb.firewall.incremental import diff
from sgweb.firewall.ir import CompiledHost
from sgweb.firewall.model import HostState
from sgweb.firewall.render import rule_count
from sgweb.kernel.apply import HostFirewall
from sgweb.kernel.carry import delta_with_counters, read_carry
from sgweb.kernel.conntrack import ConntrackCutter
from sgweb.kernel.runner import CommandError
from sgweb.kernel.watch import KernelWatch
from sgweb.wire import sync as protocol
from worker import conntrack, drift, full_apply, watcher
from worker.cutter import CutFunction, CutQueue
from worker.store import DesiredStore

log = logging.getLogger(__name__)

RETRY_REFUSED_AFTER_S = 60.0


class MissingPieces(codec.CodecError):
    """A manifest whose shared pieces the store could not read."""


class Reporter(Protocol):
    def apply(self, report: dict[str, Any]) -> None: ...

    def drift(self, report: dict[str, Any]) -> None: ...

    def request_state(self, reason: str) -> None: ...


@dataclass
class Applied:
    revision: int
    digest: str
    state: HostState
    compiled: CompiledHost


@dataclass
class Failure:
    revision: int
    digest: str
    error: str
    at: float = field(default_factory=time.monotonic)


@dataclass
class Outcome:
    action: str  # "skipped" | "unchanged" | "applied" | "failed" | "missing"
    revision: int | None = None
    report: dict[str, Any] = field(default_factory=dict)


def _default_compile() -> Callable[[HostState], CompiledHost]:
    cache = CompileCache()
    return lambda state: compile_host(state, cache=cache)


def _default_diff() -> Callable[..., Any]:
    return diff


def rule_counts(compiled: CompiledHost) -> dict[str, int]:
    """Rules per family, counted from the chains' text: `len(chain.rules)` would make every
    lazy chain's Rule objects on every apply (undoing what keeping them lazy saves)."""
    return {
        str(family): sum(
            rule_count(chain)
            for table in compiled.family(family).tables
            for chain in table.chains
            if chain.owned
        )
        for family in (4, 6)
    }


class Agent:
    def __init__(
        self,
        host: str,
        store: DesiredStore,
        firewall: HostFirewall,
        reporter: Reporter,
        *,
        compile_fn: Callable[[HostState], CompiledHost] | None = None,
        diff_fn: Callable[..., Any] | None = None,
        cut_fn: CutFunction | None = None,
        watch: KernelWatch | None = None,
    ) -> None:
        self.host = host
        self.store = store
        self.firewall = firewall
        self.reporter = reporter
        self.compile = compile_fn or _default_compile()
        self.diff = diff_fn or _default_diff()
        self.lock = threading.RLock()
        self.applied: Applied | None = None
        self.failure: Failure | None = None
        # Until a full apply succeeded we do not know what the kernel holds.
        self.kernel_known = False
        self.started_at = time.time()
        self.applies = 0
        self._verified_text: dict[int, str] = {}
        self._drift_paused_until = 0.0
        self.drift_watch = watcher.DriftWatch(firewall, watch)
        # Called with each state before its rules are applied (the drop log binds its NFLOG
        # groups first, see worker.packetlog); a failure is logged, never stops the apply.
        self.before_apply: Callable[[HostState], None] | None = None
        # Connections are cut after the apply, off the lock, in bulk over netlink.
        self.cuts = CutQueue(
            cut_fn or ConntrackCutter(firewall.netns).cut, self._remember_applied_state
        )

    # -- status -------------------------------------------------------------------------------

    @property
    def status(self) -> str:
        if self.failure is not None:
            return "failed"
        if self.applied is None or not self.kernel_known:
            return "syncing"
        return "in-sync"

    def heartbeat_payload(self) -> dict[str, Any]:
        applied = self.applied
        return {
            "host": self.host,
            "pid": os.getpid(),
            "netns": self.firewall.netns,
            "status": self.status,
            "applied_revision": applied.revision if applied else None,
            "applied_digest": applied.digest if applied else None,
            "failed_revision": self.failure.revision if self.failure else None,
            "error": self.failure.error[:500] if self.failure else None,
            "started_at": self.started_at,
            "conntrack": self.cuts.status(),
        }

    # -- converging ---------------------------------------------------------------------------

    def sync(self, revision: int | None = None, reason: str = "") -> Outcome:
        """Converge to the newest stored state (a task said `revision` is waiting)."""
        with self.lock:
            applied = self.applied
            if (
                revision is not None
                and applied is not None
                and self.kernel_known
                and revision <= applied.revision
            ):
                return Outcome("skipped", applied.revision)
            desired = self.store.fetch()
            if desired is None:
                self.reporter.request_state("agent found no desired state")
                return Outcome("missing")
            if applied is not None and self.kernel_known and desired.revision <= applied.revision:
                return Outcome("skipped", applied.revision)
            failure = self.failure
            if (
                revision is None
                and failure is not None
                and failure.revision == desired.revision
                and time.monotonic() - failure.at < RETRY_REFUSED_AFTER_S
            ):
                # The maintenance loop does not hammer the kernel with a state it refused; a
                # new revision (or an explicit nudge) retries at once, the loop only now and
                # then (the cause may have been passing, e.g. the xtables lock).
                return Outcome("skipped", desired.revision)
            return self._converge(desired, full=not self.kernel_known, reason=reason)

    def full_sync(self, reason: str) -> Outcome:
        """Re-apply everything (start-up, drift repair) from the newest stored state."""
        with self.lock:
            desired = self.store.fetch()
            if desired is None:
                self.reporter.request_state(f"agent found no desired state ({reason})")
                return Outcome("missing")
            return self._converge(desired, full=True, reason=reason)

    def _converge(self, desired: protocol.Desired, *, full: bool, reason: str) -> Outcome:
        """Decode, compile, diff and apply one desired state; report either way."""
        clock = time.perf_counter()
        base = self._report_base(desired, full=full, reason=reason)
        try:
            state = self._decode(desired)
        except MissingPieces as exc:
            # Expired or damaged pieces: a publish stores every piece it names again.
            self.reporter.request_state(str(exc))
            return self._fail(base, clock, f"unreadable desired state: {exc}", None)
        except codec.CodecError as exc:
            return self._fail(base, clock, f"unreadable desired state: {exc}", None)
        applied = self.applied
        if not full and applied is not None and applied.digest == desired.digest:
            applied.revision = desired.revision
            self.failure = None
            report = self._finish(base, clock, ok=True, mode="unchanged", compiled=applied.compiled)
            return Outcome("unchanged", desired.revision, report)
        previous = None if full or applied is None else applied.compiled
        try:
            compiled = self.compile(state)
            delta = self.diff(previous, compiled)
            rollback = self.diff(compiled, previous) if previous is not None else None
        except FirewallError as exc:
            return self._fail(base, clock, f"refused by the compiler: {exc}", None)
        if self.before_apply is not None:
            try:
                self.before_apply(state)
            except Exception:
                log.exception("preparing for revision %s failed", desired.revision)
        kernel_clock = time.perf_counter()
        result = self._apply(compiled, delta, rollback, full=full)
        if not result.ok:
            return self._refused(base, clock, result, previous)
        extra = self._apply_details(delta, result)
        if full:
            self._tidy_after_full_apply(compiled, extra)
        kernel_ms = (time.perf_counter() - kernel_clock) * 1000
        before = applied.state if applied is not None else self._state_before_restart()
        cuts = conntrack.plan_cuts(before, state, compiled) if before is not None else []
        if cuts:
            extra["conntrack_cuts"] = [
                {"port": c.port_id, "addresses": list(c.addresses), "zone": c.zone,
                 "protocol": c.protocol, "port_number": c.port, "why": c.why}
                for c in cuts
            ]  # fmt: skip
        # Queued: the apply (and the lock) does not wait for connection tracking; the applied
        # state is remembered once the cuts ran (see worker.cutter).
        self.cuts.submit(desired.revision, cuts, desired.state)
        self.applied = Applied(desired.revision, desired.digest, state, compiled)
        self.kernel_known = True
        self.failure = None
        self.applies += 1
        self._verified_text.clear()
        report = self._finish(base, clock, ok=True, compiled=compiled, kernel_ms=kernel_ms, **extra)
        log.info(
            "applied revision %s (%s, %s): %s chains replaced, %s removed, restored %s, %.1f ms",
            desired.revision, report["mode"], reason, extra["changed_chains"],
            extra["removed_chains"], extra["iptables_restored"], report["duration_ms"],
        )  # fmt: skip
        return Outcome("applied", desired.revision, report)

    def _report_base(self, desired: protocol.Desired, *, full: bool, reason: str) -> dict[str, Any]:
        return {
            "host": self.host,
            "revision": desired.revision,
            "digest": desired.digest,
            "reason": reason,
            "mode": "full" if full else "incremental",
            "first": self.applies == 0,
            "started_at": time.time(),
            "published_at": desired.published_at,
            "agent_pid": os.getpid(),
        }

    @staticmethod
    def _decode(desired: protocol.Desired) -> HostState:
        if isinstance(desired.assembled, HostState):
            return desired.assembled  # assembled from pieces the store checked by hash
        if manifest.is_manifest(desired.state):
            raise MissingPieces("the desired state's shared pieces could not be read")
        state = codec.from_dict(desired.state)
        if codec.digest(codec.dumps(state)) != desired.digest:
            raise codec.CodecError("digest does not match the state (corrupted document)")
        return state

    def _apply(self, compiled: CompiledHost, delta: Any, rollback: Any, *, full: bool) -> Any:
        if full:
            # Nothing trustworthy to roll back to on a full apply (start-up, repair): no
            # whole-table snapshot (an iptables-save per table, ~0.4 s at 50k rules); if a
            # later family fails, the kernel stays unknown and is re-applied in full.
            # Counters survive a full apply too (issue 12): read just before, written back.
            carried = {family: read_carry(self.firewall, family) for family in (4, 6)}
            delta = delta_with_counters(full_apply.with_existing_sets(delta), carried)
            return full_apply.apply_full(self.firewall, compiled, delta, carried)
        return self.firewall.apply(delta, rollback=rollback)

    def _refused(
        self, base: dict[str, Any], clock: float, result: Any, previous: CompiledHost | None
    ) -> Outcome:
        """The kernel refused: the previous rules stay (rolled back), or, if a later step failed
        after an earlier one took, the kernel is unknown and the next attempt applies in full."""
        early_steps = ("ipsets.prepare", "iptables.4")
        if (
            not result.rolled_back
            and previous is not None
            and result.failed_step not in early_steps
        ):
            self.kernel_known = False
        detail = {
            "failed_step": result.failed_step,
            "rolled_back": result.rolled_back,
            "warnings": list(result.warnings),
        }
        return self._fail(
            base,
            clock,
            result.error or "apply failed",
            result.offending_line,
            detail,
            offending_line_number=result.offending_line_number,
        )

    @staticmethod
    def _apply_details(delta: Any, result: Any) -> dict[str, Any]:
        return {
            "changed_chains": len(getattr(delta, "changed_chains", ()) or ()),
            "removed_chains": len(getattr(delta, "removed_chains", ()) or ()),
            "iptables_restored": [family for family, text in delta.iptables if text.strip()],
            "ipset_changed": bool(delta.ipsets.prepare.strip() or delta.ipsets.commit.strip()),
            "steps": {name: round(seconds * 1000, 3) for name, seconds in result.steps},
            "warnings": list(result.warnings),
        }

    def _tidy_after_full_apply(self, compiled: CompiledHost, extra: dict[str, Any]) -> None:
        # Families restored as whole tables already have their jumps and nothing stale.
        careful = tuple(
            family for family in (4, 6) if f"iptables.{family}.tables" not in extra["steps"]
        )
        if careful:
            extra["jumps_added"] = self.firewall.ensure_builtin_jumps(compiled)
        extra["stale_removed"] = full_apply.remove_stale(self.firewall, compiled, careful)

    def _state_before_restart(self) -> HostState | None:
        """What an earlier run of this agent applied, so its removed rules are cut too.

        A rule deleted while the agent was down would otherwise leave the connections it let
        in alive after the restart, since a fresh agent has no previous state to compare.
        """
        if self.applies:
            return None
        load = getattr(self.store, "applied_state", None)
        try:
            data = load() if load is not None else None
            return codec.from_dict(data) if data else None
        except Exception as exc:  # a missing or unreadable copy only costs the cut
            log.warning("no previous state to cut connections against: %s", exc)
            return None

    def _remember_applied_state(self, state: dict[str, Any]) -> None:
        save = getattr(self.store, "set_applied_state", None)
        if save is not None:
            save(state)

    def _finish(
        self,
        base: dict[str, Any],
        clock: float,
        *,
        ok: bool,
        compiled: CompiledHost | None = None,
        mode: str | None = None,
        kernel_ms: float | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        finished = time.time()
        report = {
            **base,
            **extra,
            "ok": ok,
            "finished_at": finished,
            "duration_ms": round((time.perf_counter() - clock) * 1000, 3),
        }
        if mode:
            report["mode"] = mode
        if kernel_ms is not None:
            report["kernel_ms"] = round(kernel_ms, 3)
        if compiled is not None:
            report["rules"] = rule_counts(compiled)
            report["sets"] = len(compiled.ipsets)
        self._send(report)
        return report

    def _fail(
        self,
        base: dict[str, Any],
        clock: float,
        error: str,
        line: str | None,
        detail: dict[str, Any] | None = None,
        offending_line_number: int | None = None,
    ) -> Outcome:
        self.failure = Failure(base["revision"], base["digest"], error)
        report = self._finish(
            base,
            clock,
            ok=False,
            error=error,
            error_line=line,
            error_line_number=offending_line_number,
            still_applied=self.applied.revision if self.applied else None,
            **(detail or {}),
        )
        log.error("apply of revision %s failed: %s (line: %s)", base["revision"], error, line)
        return Outcome("failed", base["revision"], report)

    def _send(self, report: dict[str, Any]) -> None:
        try:
            self.store.set_applied(report)
        except Exception as exc:  # Redis down: the report still goes out through Celery
            log.warning("could not store apply report: %s", exc)
        try:
            self.reporter.apply(report)
        except Exception as exc:
            log.warning("could not send apply report: %s", exc)

    # -- drift --------------------------------------------------------------------------------

    def pause_drift(self, seconds: float) -> None:
        """Hold drift checks while something changes the kernel on purpose (a probe, a trace)."""
        self._drift_paused_until = max(self._drift_paused_until, time.monotonic() + seconds)

    def check_drift(
        self, *, repair: bool = True, force: bool = False
    ) -> drift.DriftFindings | None:
        """Compare the kernel with the last applied state; repair what is ours and report.

        Free when nothing moved (`worker.watcher`: the nf_tables generation and the bridge
        sysctls as at the last clean check); `force` reads everything anyway. The kernel is
        read without holding the lock (on a 1000-port host that is about a second of
        iptables-save), so syncs are not held up; if an apply happened meanwhile, the reading
        may mix two states and this round is skipped.
        """
        applied = self.applied
        if applied is None or not self.kernel_known:
            return None
        if time.monotonic() < self._drift_paused_until:
            return None
        snapshot = self.drift_watch.snapshot()
        if self.drift_watch.unchanged(snapshot, force=force):
            return drift.DriftFindings()
        clock = time.perf_counter()
        reading = self.drift_watch.read(snapshot, [ipset.name for ipset in applied.compiled.ipsets])
        with self.lock:
            if self.applied is not applied or not self.kernel_known:
                return None
            examined = self.drift_watch.examine(applied.compiled, reading, self._verified_text)
            if not examined.needs_repair:
                self.drift_watch.mark_clean(snapshot, full=True)
                if self.drift_watch.alerts_changed(examined.alerts):
                    self._report_drift(applied, examined, clock, repaired=[], outcome=None)
                return examined.findings
            log.warning("drift on %s: %s", self.host, examined.findings.words())
            repaired: list[str] = []
            outcome = None
            if repair:
                if examined.findings.shape:
                    outcome = self._repair(applied)
                    if outcome.action == "applied":
                        repaired.append(f"re-applied revision {applied.revision} in full.")
                try:
                    repaired += self.drift_watch.repair_bypasses(applied.compiled, examined)
                except CommandError as exc:
                    outcome = Outcome("failed", applied.revision, {"error": str(exc)})
            self._report_drift(applied, examined, clock, repaired=repaired, outcome=outcome)
            return examined.findings

    def _report_drift(
        self,
        applied: Applied,
        examined: watcher.Examined,
        clock: float,
        *,
        repaired: list[str],
        outcome: Outcome | None,
    ) -> None:
        error = outcome.report.get("error") if outcome and outcome.action != "applied" else None
        report = self.drift_watch.report(
            self.host, applied.revision, applied.digest, examined, repaired, error, clock
        )
        try:
            self.reporter.drift(report)
        except Exception as exc:
            log.warning("could not send drift report: %s", exc)

    def _repair(self, applied: Applied) -> Outcome:
        """Re-apply exactly what we last applied (not a newer state nobody asked us for yet)."""
        desired = protocol.Desired(
            revision=applied.revision,
            digest=applied.digest,
            published_at=0.0,
            state=codec.to_dict(applied.state),
            assembled=applied.state,
        )
        self.kernel_known = False
        return self._converge(desired, full=True, reason="drift repair")
