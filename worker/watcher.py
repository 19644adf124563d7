"""The agent's drift checks: free when nothing moved, thorough when something did.

Each check first takes a `KernelWatch` snapshot (the nf_tables generation and the bridge
sysctls: no process, ~0.1 ms). Equal to the snapshot of the last clean check means nothing
that decides traffic changed, and the check ends there; so checks can run every few seconds.
Otherwise the rules are read (`iptables-save` of raw and filter, both families, everyone's rules)
and compared: our chains, jumps and sets (`worker.drift`), and what else decides our traffic
(`worker.bypass`). ipset members do not move the nf_tables generation, so a full check also
runs every `full_every_s` whatever the snapshot says.

The watch keeps what a single reading cannot know: the policies found at start (a change is
reported), the foreign rules once found ahead of our jumps (reported while they exist, even once
our jumps are first again), and the alerts last reported (so a report also goes out when they
clear).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sgweb.firewall.ir import CompiledHost
from sgweb.kernel.apply import HostFirewall
from sgweb.kernel.runner import CommandError
from sgweb.kernel.watch import KernelWatch, Snapshot
from worker import bypass, drift

log = logging.getLogger(__name__)

FULL_CHECK_EVERY_S = 60.0
# Reading the rules of a big host takes seconds of CPU (iptables-save); when the generation
# keeps moving (our own applies move it too) reads are spaced so they take at most this share
# of the time. A bridge sysctl that moved is never deferred (it is read without a process).
MAX_READ_SHARE = 0.1


@dataclass
class Reading:
    """One read of the kernel, taken outside the agent's lock."""

    snapshot: Snapshot | None
    tables: dict[int, str]  # family -> iptables-save of raw + filter, everyone's rules
    ours: dict[int, str]  # family -> our part of it, counters zeroed
    sets: str
    duration_s: float
    # (family, name) -> `nft -j list table` of each nf_tables table iptables did not make
    nft: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


@dataclass
class Examined:
    findings: drift.DriftFindings
    bypasses: list[bypass.Finding]
    alerts: list[str]

    @property
    def needs_repair(self) -> bool:
        return self.findings.shape or any(f.action == bypass.REPAIR for f in self.bypasses)


@dataclass
class DriftWatch:
    firewall: HostFirewall
    watch: KernelWatch | None
    full_every_s: float = FULL_CHECK_EVERY_S
    clean: Snapshot | None = None
    last_full: float = field(default_factory=time.monotonic)
    read_share: float = MAX_READ_SHARE
    next_read_at: float = 0.0  # monotonic; reads are spaced by `read_share`
    policies: dict[tuple[int, str, str], str] = field(default_factory=dict)
    foreign: dict[tuple[int | None, str, str, str], bypass.Finding] = field(default_factory=dict)
    reported_alerts: list[str] | None = None  # None: nothing reported since the agent started

    def snapshot(self) -> Snapshot | None:
        if self.watch is None:
            return None
        try:
            return self.watch.snapshot()
        except OSError as exc:
            log.warning("could not read the nf_tables generation: %s", exc)
            return None

    def unchanged(self, snapshot: Snapshot | None, *, force: bool) -> bool:
        """Nothing that decides traffic moved since the last clean check (skip reading)."""
        if force or snapshot is None or snapshot.generation is None or self.clean is None:
            return False
        now = time.monotonic()
        if now - self.last_full >= self.full_every_s:
            return False
        if snapshot.sysctls == self.clean.sysctls and now < self.next_read_at:
            return True  # only the generation moved, and the last read was moments ago
        return snapshot == self.clean

    def read(self, snapshot: Snapshot | None, set_names: list[str]) -> Reading:
        started = time.perf_counter()
        tables = {family: self.firewall.save_tables(family) for family in (4, 6)}
        ours = {family: self.firewall.ours_only(text) for family, text in tables.items()}
        sets = self.firewall.save_ipsets(set_names) if set_names else ""
        nft = self._foreign_nft()
        took = time.perf_counter() - started
        self.next_read_at = time.monotonic() + took * (1 / self.read_share - 1)
        return Reading(snapshot, tables, ours, sets, took, nft)

    def _foreign_nft(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Tables iptables did not make, listed over netlink (no process) and, only if there
        are any, read with `nft -j list table`."""
        if self.watch is None:
            return {}
        try:
            foreign = bypass.foreign_tables(self.watch.tables())
            return {table: self.firewall.nft_table(*table) for table in foreign}
        except (OSError, CommandError, ValueError) as exc:  # no nft: iptables' view only
            log.debug("nft tables not read: %s", exc)
            return {}

    def examine(
        self,
        compiled: CompiledHost,
        reading: Reading,
        verified: dict[int, str],
    ) -> Examined:
        """Compare one reading with what was applied; `verified` is the agent's memory of the
        kernel's own text once it matched (updated here)."""
        findings = drift.DriftFindings()
        for family, text in reading.ours.items():
            drift.compare_iptables(compiled, family, text, findings)
        if compiled.ipsets:
            drift.compare_ipsets(compiled, reading.sets, findings)
        if not findings:
            for family, text in reading.ours.items():
                known = verified.get(family)
                if known is None:
                    verified[family] = text
                elif known != text:
                    drift.compare_text(family, known, text, findings)
        parsed = {family: bypass.parse_builtins(text) for family, text in reading.tables.items()}
        found = self._bypasses(compiled, reading, parsed)
        findings.bypasses.extend(finding.words for finding in found)
        for finding in found:
            if finding.kind == bypass.FOREIGN_AHEAD:
                self.foreign[finding.key] = finding
        return Examined(findings, found, self._alerts(parsed, found))

    def _bypasses(
        self, compiled: CompiledHost, reading: Reading, parsed: bypass.Parsed
    ) -> list[bypass.Finding]:
        found: list[bypass.Finding] = []
        for family, text in reading.tables.items():
            found.extend(
                bypass.builtin_findings(compiled, family, text, self.policies, parsed[family])
            )
        if reading.snapshot is not None:
            found.extend(bypass.sysctl_findings(dict(reading.snapshot.sysctls)))
        for (nft_family, name), document in sorted(reading.nft.items()):
            found.extend(bypass.nft_findings(nft_family, name, document))
        return found

    def _alerts(self, kernel: bypass.Parsed, found: list[bypass.Finding]) -> list[str]:
        """What stays in force after any repair: not ours to change, so reported until gone."""
        for key, finding in list(self.foreign.items()):
            if finding not in bypass.still_present({key: finding}, kernel):
                del self.foreign[key]  # removed by whoever put it there
        alerts = [
            f.words for f in found if f.action == bypass.ALERT and f.kind != bypass.FOREIGN_AHEAD
        ]
        for finding in self.foreign.values():
            alerts.append(
                f"{finding.words} Left in place (not ours to remove); our jumps come first again."
            )
        return alerts

    def repair_bypasses(self, compiled: CompiledHost, examined: Examined) -> list[str]:
        """Put our jumps first again and the bridge sysctls back to 1; say what was done."""
        done: list[str] = []
        for family in (4, 6):
            chains = {
                (f.table, f.chain)
                for f in examined.bypasses
                if f.kind == bypass.JUMP_ORDER and f.family == family
            }
            if chains:
                # Read again, just these chains (`iptables -S CHAIN`, not a whole save): a full
                # re-apply may have just changed them.
                saved = "".join(
                    f"*{table}\n{self.firewall.list_rules(family, table, chain)}COMMIT\n"
                    for table, chain in sorted(chains)
                )
                moved = self.firewall.put_jumps_first(compiled, family, chains, saved)
                where = ", ".join(f"{table} {chain}" for table, chain in sorted(chains))
                done.append(f"IPv{family} {where}: our {moved} jumps put back first.")
        sysctls = {f.chain: 1 for f in examined.bypasses if f.kind == bypass.SYSCTL_OFF}
        if sysctls:
            self.firewall.set_sysctls(sysctls)
            done.append(f"{', '.join(sorted(sysctls))} set back to 1.")
        return done

    def mark_clean(self, snapshot: Snapshot | None, *, full: bool) -> None:
        self.clean = snapshot
        if full:
            self.last_full = time.monotonic()

    def report(
        self,
        host: str,
        revision: int,
        digest: str,
        examined: Examined,
        repaired: list[str],
        error: str | None,
        clock: float,
    ) -> dict[str, Any]:
        """The drift report for the control plane (and remember which alerts it carried)."""
        self.reported_alerts = list(examined.alerts)
        return {
            "host": host,
            "revision": revision,
            "digest": digest,
            "found": examined.findings.as_dict(),
            "words": examined.findings.words(),
            "alerts": examined.alerts,
            "repairs": repaired,
            "detected_at": time.time(),
            "repaired": bool(repaired) and error is None,
            "error": error,
            "duration_ms": round((time.perf_counter() - clock) * 1000, 3),
        }

    def alerts_changed(self, alerts: list[str]) -> bool:
        return self.reported_alerts is None or alerts != self.reported_alerts
