"""The network node's side of the agent: converge each router namespace to the newest router state.

Same worker, same lock as the port chains (`worker.agent.Agent`): a host with the network-node
role has router state stored for it (`sgweb.wire.routers`) and is nudged on its router channel
(`worker.nudges`; the reconciler's `router_sync` task on its usual queue is the fallback); a
host without any simply finds nothing and does nothing.

Per router the filter table goes in with `sgweb.kernel.router.RouterFirewall`: whole tables on the
first apply after start (and on repair), only the changed chains afterwards, so the counters of
unchanged firewall rules keep counting. Several routers are one state: if router B refuses its
table after router A took its new one, A is put back to what it had, so the previous state stays
in force on every router and the report names the router and the line the kernel refused. After
an apply, connections the new rules would not let start are cut (conntrack), as Neutron does:
off the lock, in a thread of their own (`RouterCuts`), so the next revision never waits for a
conntrack dump of every changed router.

Revisions as on the port path: a nudge for a revision already applied is a no-op; otherwise the
newest stored state is read, so a burst of nudges coalesces; never an older one over a newer.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sgweb.firewall.errors import FirewallError
from sgweb.firewall.fwaas import codec
from sgweb.firewall.fwaas.compiler import CompiledRouter, PolicyMemo, compile_router
from sgweb.firewall.fwaas.model import (
    NetworkNodeState,
    Router,
    RouterState,
)
from sgweb.kernel.apply import ApplyReport
from sgweb.kernel.netns import list_namespaces
from sgweb.kernel.router import EMPTY_FILTER, RouterFirewall, RuleHits
from sgweb.kernel.routerns import router_netns
from sgweb.kernel.runner import CommandRunner
from sgweb.kernel.watch import CONNTRACK_COUNT, KernelWatch
from sgweb.wire import sync as protocol
from worker.agent import Outcome
from worker.router_io import Plumber, RouterStore
from worker.router_threads import RouterCuts

log = logging.getLogger(__name__)

RETRY_REFUSED_AFTER_S = 60.0
# Routers are applied side by side: each is a couple of iptables-restore processes in its own
# namespace, mostly waiting on fork/exec and the kernel's commit, so a node with 50 routers
# would otherwise pay 100 process round trips in a row. A few at a time is plenty.
APPLY_WORKERS = 4


@dataclass
class AppliedRouters:
    revision: int
    digest: str
    state: NetworkNodeState
    compiled: dict[str, CompiledRouter]


@dataclass
class RouterFailure:
    revision: int
    error: str
    at: float = field(default_factory=time.monotonic)


class RouterAgent:
    def __init__(
        self,
        host: str,
        store: RouterStore,
        runner: CommandRunner,
        report: Callable[[dict[str, Any]], None],
        *,
        lock: threading.RLock | None = None,
        netns_prefix: str = "",
        plumb: Plumber | None = None,
        unplumb: Callable[[str], None] | None = None,
    ) -> None:
        self.host = host
        self.store = store
        self.runner = runner
        self.report = report
        self.lock = lock or threading.RLock()
        self.netns_prefix = netns_prefix
        self.plumb = plumb
        self.unplumb = unplumb
        self.applied: AppliedRouters | None = None
        self.failure: RouterFailure | None = None
        self.kernel_known = False  # until a full apply, the namespaces hold who knows what
        self._watches: dict[str, KernelWatch] = {}
        self._clean_generation: dict[str, int | None] = {}
        self._plumbed: dict[str, Router] = {}
        self.cuts = RouterCuts(self.firewall, self.tracked_connections)
        self._executor: ThreadPoolExecutor | None = None
        self._compile_cache: dict[str, tuple[RouterState, CompiledRouter]] = {}

    def netns(self, router_id: str) -> str:
        return router_netns(router_id, self.netns_prefix)

    def firewall(self, router_id: str) -> RouterFirewall:
        return RouterFirewall(self.runner, self.netns(router_id))

    def tracked_connections(self, router_id: str) -> int | None:
        """The router namespace's connection-tracking entries, read from a sysctl descriptor
        held open in it (no process); None when unknown (then the cuts list them anyway)."""
        watch = self._watches.setdefault(router_id, KernelWatch(self.netns(router_id)))
        try:
            return watch.sysctl(CONNTRACK_COUNT)
        except OSError:
            return None

    def heartbeat_payload(self) -> dict[str, Any]:
        applied = self.applied
        return {
            "router_revision": applied.revision if applied else None,
            "router_digest": applied.digest if applied else None,
            "routers": len(applied.compiled) if applied else 0,
            "router_error": self.failure.error[:500] if self.failure else None,
        }

    # -- converging -----------------------------------------------------------------------------

    def sync(self, revision: int | None = None, reason: str = "") -> Outcome:
        with self.lock:
            applied = self.applied
            known = applied is not None and self.kernel_known
            if revision is not None and known and applied and revision <= applied.revision:
                return Outcome("skipped", applied.revision)
            desired = self.store.fetch()
            if desired is None:
                return Outcome("missing")  # not a network node, or nothing published yet
            if known and applied and desired.revision <= applied.revision:
                return Outcome("skipped", applied.revision)
            failure = self.failure
            if (
                revision is None
                and failure is not None
                and failure.revision == desired.revision
                and time.monotonic() - failure.at < RETRY_REFUSED_AFTER_S
            ):
                return Outcome("skipped", desired.revision)
            return self._converge(desired, full=not self.kernel_known, reason=reason)

    def full_sync(self, reason: str) -> Outcome:
        with self.lock:
            desired = self.store.fetch()
            if desired is None:
                return Outcome("missing")
            return self._converge(desired, full=True, reason=reason)

    def _converge(self, desired: protocol.Desired, *, full: bool, reason: str) -> Outcome:
        clock = time.perf_counter()
        base = {
            "host": self.host,
            "revision": desired.revision,
            "digest": desired.digest,
            "reason": reason,
            "mode": "full" if full else "incremental",
            "published_at": desired.published_at,
            "started_at": time.time(),
            "agent_pid": os.getpid(),
        }
        try:
            state = codec.from_dict(desired.state)
            if codec.digest(codec.dumps(state)) != desired.digest:
                raise codec.CodecError("digest does not match the state (corrupted document)")
            if state.host != self.host:
                raise codec.CodecError(f"a router state for {state.host!r}, not {self.host!r}")
        except codec.CodecError as exc:
            return self._fail(base, clock, f"unreadable router state: {exc}")
        try:
            compiled = self._compile(state)
        except FirewallError as exc:
            return self._fail(base, clock, f"refused by the compiler: {exc}")
        applied = self.applied
        previous = {} if full or applied is None else applied.compiled
        by_id = {router.router.id: router for router in state.routers}
        work = [(rid, compiled[rid], previous.get(rid), by_id[rid]) for rid in sorted(compiled)]
        results = list(self._pool().map(lambda item: self._apply_one(*item, full=full), work))
        done: list[tuple[str, CompiledRouter, CompiledRouter | None]] = []
        routers: dict[str, Any] = {}
        refused: tuple[str, ApplyReport] | None = None
        for (router_id, new, old, _state), result in zip(work, results, strict=True):
            if result is None:
                continue  # its table is as applied already
            routers[router_id] = _router_summary(result)
            if result.ok:
                done.append((router_id, new, old))
            elif refused is None:
                refused = (router_id, result)
        if refused is not None:
            self._put_back(done)
            router_id, result = refused
            return self._fail(base, clock, result.error or "apply failed", router_id, result)
        gone = sorted(set(applied.compiled if applied else {}) - set(compiled))
        for router_id in gone:
            self._remove(router_id)
        if full:
            gone += self._remove_strays(set(compiled))
        kernel_applied_at = time.time()  # every router's new rules in force from here on
        self.cuts.submit([r for r in state.routers if r.router.id in {d[0] for d in done}])
        self.applied = AppliedRouters(desired.revision, desired.digest, state, compiled)
        self.kernel_known = True
        self.failure = None
        self._clean_generation.clear()
        report = {
            **base,
            "ok": True,
            "routers": routers,
            "removed_routers": gone,
            "cuts_queued": len(done),
            "kernel_applied_at": kernel_applied_at,
            "duration_ms": round((time.perf_counter() - clock) * 1000, 3),
        }
        self._send(report)
        log.info(
            "router revision %s applied (%s, %s): %d of %d routers changed, %.1f ms",
            desired.revision, base["mode"], reason, len(done), len(compiled),
            report["duration_ms"],
        )  # fmt: skip
        return Outcome("applied", desired.revision, report)

    def _compile(self, state: NetworkNodeState) -> dict[str, CompiledRouter]:
        """Only routers whose state changed are compiled again: a policy on one router of
        fifty does not recompile the other 49 (comparing states costs far less); and the
        routers compiled share one `PolicyMemo`, so a policy on all fifty is validated and
        rendered once per family, not once per group and direction."""
        compiled: dict[str, CompiledRouter] = {}
        cache: dict[str, tuple[RouterState, CompiledRouter]] = {}
        memo = PolicyMemo()
        for router in state.routers:
            known = self._compile_cache.get(router.router.id)
            if known is not None and known[0] == router:
                result = known[1]
            else:
                result = compile_router(router, memo)
            compiled[router.router.id] = result
            cache[router.router.id] = (router, result)
        self._compile_cache = cache
        return compiled

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(APPLY_WORKERS, thread_name_prefix="sgweb-router")
        return self._executor

    def _apply_one(
        self,
        router_id: str,
        new: CompiledRouter,
        old: CompiledRouter | None,
        state: RouterState,
        *,
        full: bool,
    ) -> ApplyReport | None:
        """One router's plumbing and table; None when its table needs nothing."""
        try:
            # Interfaces can change without the table changing (a router without groups).
            self._plumb(state, again=full)
            if old is not None and old == new:
                return None
            return self.firewall(router_id).apply(new, old)
        except Exception as exc:  # plumbing or the runner failed outright
            return _failed_report(f"{type(exc).__name__}: {exc}")

    def _plumb(self, state: RouterState, *, again: bool) -> None:
        """The router's namespace and interfaces, unless they are as last plumbed: plumbing
        is several `ip` commands per router, which a rule change must not pay for."""
        if self.plumb is None:
            return
        router = state.router
        if not again and self._plumbed.get(router.id) == router:
            return
        self._plumbed.pop(router.id, None)
        self.plumb(state, self.netns(router.id))
        self._plumbed[router.id] = router

    def _put_back(self, done: list[tuple[str, CompiledRouter, CompiledRouter | None]]) -> None:
        """Routers that took the new state before another refused it get their old one back;
        one that had no known old state leaves the kernel unknown (the next apply is full)."""
        for router_id, new, old in reversed(done):
            if old is None:
                self.kernel_known = False
                continue
            back = self.firewall(router_id).apply(old, new)
            if not back.ok:
                log.error("could not put router %s back: %s", router_id, back.error)
                self.kernel_known = False

    def _remove_strays(self, wanted: set[str]) -> list[str]:
        """Router namespaces of ours that the state does not name, from before a restart (a
        router deleted while the agent was down would otherwise go on routing and filtering
        with its old rules), as Neutron's L3 agent cleans up at start. Only where we plumb:
        otherwise someone else owns the namespaces."""
        if self.unplumb is None:
            return []
        marker = self.netns("")
        strays = []
        for netns in list_namespaces(marker):
            router_id = netns[len(marker) :]
            if router_id and router_id not in wanted:
                log.info("removing router namespace %s, which the state no longer has", netns)
                self.unplumb(netns)
                strays.append(router_id)
        return strays

    def _remove(self, router_id: str) -> None:
        """A router this node no longer has: its namespace goes (plumbed by us) or its table is
        emptied, so nothing of ours filters traffic there any more."""
        self._plumbed.pop(router_id, None)
        watch = self._watches.pop(router_id, None)
        if watch is not None:
            watch.close()
        netns = self.netns(router_id)
        if self.unplumb is not None:
            self.unplumb(netns)
            return
        if netns in list_namespaces(netns):
            for family in (4, 6):
                restore = "ip6tables-restore" if family == 6 else "iptables-restore"
                self.runner.run([restore], input=EMPTY_FILTER, netns=netns, check=False)

    def _fail(
        self,
        base: dict[str, Any],
        clock: float,
        error: str,
        router_id: str | None = None,
        result: ApplyReport | None = None,
    ) -> Outcome:
        self.failure = RouterFailure(base["revision"], error)
        report = {
            **base,
            "ok": False,
            "error": error,
            "failed_router": router_id,
            "failed_step": result.failed_step if result else None,
            "error_line": result.offending_line if result else None,
            "error_line_number": result.offending_line_number if result else None,
            "rolled_back": result.rolled_back if result else False,
            "still_applied": self.applied.revision if self.applied else None,
            "duration_ms": round((time.perf_counter() - clock) * 1000, 3),
        }
        self._send(report)
        log.error("router revision %s failed: %s", base["revision"], error)
        return Outcome("failed", base["revision"], report)

    def _send(self, report: dict[str, Any]) -> None:
        try:
            self.store.set_applied(report)
        except Exception as exc:
            log.warning("could not store router apply report: %s", exc)
        try:
            self.report(report)
        except Exception as exc:
            log.warning("could not send router apply report: %s", exc)

    # -- reading back, drift ----------------------------------------------------------------------

    def rule_hits(self) -> dict[str, list[RuleHits]]:
        """Every firewall rule's counters, per router (the router page's live counters)."""
        applied = self.applied
        if applied is None:
            return {}
        return {rid: self.firewall(rid).rule_hits(c) for rid, c in sorted(applied.compiled.items())}

    def check_drift(self, *, repair: bool = True) -> dict[str, list[tuple[int, str]]]:
        """Routers whose namespace holds other chains than we applied, repaired by a full apply
        of that router. Cheap when nothing moved: a router's tables are read only when its
        namespace's nf_tables generation changed since its last clean check."""
        applied = self.applied
        if applied is None or not self.kernel_known:
            return {}
        drifted: dict[str, list[tuple[int, str]]] = {}
        for router_id, compiled in sorted(applied.compiled.items()):
            watch = self._watches.get(router_id)
            if watch is None:
                watch = self._watches[router_id] = KernelWatch(self.netns(router_id))
            try:
                generation = watch.generation()
            except Exception:
                generation = None
            if generation is not None and self._clean_generation.get(router_id) == generation:
                continue
            with self.lock:
                if self.applied is not applied:
                    return drifted  # an apply came in between: the next round looks again
                try:
                    chains = self.firewall(router_id).drift(compiled)
                except Exception as exc:  # the namespace went away: report it as drift
                    chains = [(0, f"namespace unreadable: {exc}")]
                if not chains:
                    self._clean_generation[router_id] = generation
                    continue
                drifted[router_id] = chains
                log.warning("drift on router %s: %s", router_id, chains)
                if repair:
                    self._repair(router_id, compiled, applied)
        return drifted

    def _repair(self, router_id: str, compiled: CompiledRouter, applied: AppliedRouters) -> None:
        router = next(r for r in applied.state.routers if r.router.id == router_id)
        try:
            self._plumb(router, again=True)
            result = self.firewall(router_id).apply(compiled, None)
        except Exception as exc:
            result = _failed_report(f"{type(exc).__name__}: {exc}")
        report = {
            "host": self.host,
            "revision": applied.revision,
            "digest": applied.digest,
            "reason": "drift repair",
            "mode": "full",
            "ok": result.ok,
            "error": result.error,
            "routers": {router_id: _router_summary(result)},
        }
        self._send(report)


def _failed_report(error: str) -> ApplyReport:
    return ApplyReport(False, 0.0, (), {}, {}, 0, error=error, failed_step="plumb")


def _router_summary(result: ApplyReport) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "steps": {name: round(seconds * 1000, 3) for name, seconds in result.steps},
        "rule_lines": {str(k): v for k, v in result.rule_lines.items()},
    }
