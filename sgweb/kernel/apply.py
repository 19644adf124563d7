"""Put compiled firewall state into a kernel (a network namespace or the host).

Apply order (issue 2/4): ipsets built aside (prepare) -> iptables-restore --noflush per family ->
sets swapped in (commit) -> sets nobody references any more removed (cleanup). If a step fails
the prepared sets are dropped (abort) and a family that already went in is put back, so the
previous rules stay in force; the report quotes the line the kernel refused.

Reading back (counters, save, conntrack) lives in `sgweb.kernel.readback`, the delta types in
`sgweb.kernel.deltas`; both are re-exported here, where callers have always found them.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sgweb.firewall.ir import BUILTIN_CHAINS, CompiledHost
from sgweb.firewall.render import render_iptables
from sgweb.kernel.carry import restore_argv
from sgweb.kernel.deltas import (
    DeltaLike,
    IpsetPlan,
    IpsetPlanLike,
    PlainDelta,
    full_delta,
    removal_delta,
)
from sgweb.kernel.readback import (
    FILTER_TOP,
    TABLES,
    Counter,
    KernelReadback,
    iptables_command,
    restore_command,
    save_command,
)
from sgweb.kernel.runner import CommandResult

__all__ = [
    "FILTER_TOP",
    "TABLES",
    "ApplyError",
    "ApplyReport",
    "Counter",
    "DeltaLike",
    "HostFirewall",
    "IpsetPlan",
    "IpsetPlanLike",
    "KernelReadback",
    "PlainDelta",
    "full_delta",
    "offending_line",
    "removal_delta",
]

_IPTABLES_LINE = (
    re.compile(r"Error occurred at line: (\d+)"),
    re.compile(r"line (\d+) failed"),
)
_IPSET_LINE = re.compile(r"Error in line (\d+)")


@dataclass(frozen=True, slots=True)
class ApplyReport:
    ok: bool
    duration_s: float
    steps: tuple[tuple[str, float], ...]  # (step name, seconds), in the order they ran
    rule_lines: dict[int, int]  # family -> "-A"/"-I"/"-D"/"-R" lines sent
    chain_lines: dict[int, int]  # family -> chain declarations / deletions sent
    ipset_lines: int
    error: str | None = None
    failed_step: str | None = None  # "ipsets.prepare", "iptables.4", "ipsets.commit", ...
    offending_line_number: int | None = None  # 1-based, in that step's input
    offending_line: str | None = None
    rolled_back: bool = False  # a family that had gone in was put back
    warnings: tuple[str, ...] = ()

    @property
    def kernel_s(self) -> float:
        """Time spent in the kernel tools (ipset, iptables-restore, rollback), not in Python."""
        return sum(seconds for _step, seconds in self.steps)

    def raise_for_error(self) -> None:
        if not self.ok:
            raise ApplyError(self)


class ApplyError(RuntimeError):
    def __init__(self, report: ApplyReport) -> None:
        self.report = report
        where = ""
        if report.offending_line_number is not None:
            where = f" (line {report.offending_line_number}: {report.offending_line})"
        super().__init__(f"{report.failed_step} failed: {report.error}{where}")


def offending_line(error_text: str, input_text: str, *, ipset: bool = False) -> tuple[int, str]:
    """The line number the tool blamed and that line of its input, or (0, "")."""
    patterns = (_IPSET_LINE,) if ipset else _IPTABLES_LINE
    for pattern in patterns:
        found = pattern.search(error_text)
        if found:
            number = int(found.group(1))
            lines = input_text.splitlines()
            return number, lines[number - 1] if 0 < number <= len(lines) else ""
    return 0, ""


def _count_lines(text: str) -> tuple[int, int]:
    rules = chains = 0
    for line in text.splitlines():
        if line[:3] in ("-A ", "-I ", "-D ", "-R "):
            rules += 1
        elif line.startswith(":") or line[:3] in ("-X ", "-N ", "-F "):
            chains += 1
    return rules, chains


def _tables_in(text: str) -> list[str]:
    return [line[1:].strip() for line in text.splitlines() if line.startswith("*")]


class HostFirewall(KernelReadback):
    """The kernel side of one host: a namespace (or None for the runner's own namespace)."""

    # -- applying -----------------------------------------------------------------------------

    def apply(self, delta: DeltaLike, *, rollback: DeltaLike | None = None) -> ApplyReport:
        """Apply a delta atomically per step; see the module docstring for the order.

        `rollback` is the delta from the new state back to the previous one (cheap to compute
        from the two compiled states). It is used only if one family went in and a later step
        failed; without it the affected tables are saved before the first family is applied,
        which costs an `iptables-save`, and restored from that.
        """
        run = _ApplyRun(self, delta)
        plan = delta.ipsets
        if plan.prepare.strip():
            result = run.timed("ipsets.prepare", ["ipset", "restore"], plan.prepare)
            if result.returncode != 0:
                run.abort_ipsets()
                return run.finish(**run.ipset_failure("ipsets.prepare", result, plan.prepare))
        snapshots: dict[int, dict[str, str]] = {}
        applied: list[int] = []
        for index, (family, text) in enumerate(run.families):
            more_to_come = index + 1 < len(run.families) or bool(plan.commit.strip())
            if rollback is None and more_to_come:
                snapshots[family] = self._snapshot_tables(family, _tables_in(text), run.steps)
            name = f"iptables.{family}"
            result = run.timed(name, restore_argv(family, text, "--noflush"), text)
            if result.returncode != 0:
                number, line = offending_line(result.stderr, text)
                rolled_back = self._roll_back(applied, rollback, snapshots, run.steps, run.warnings)
                run.abort_ipsets()
                return run.finish(
                    error=result.stderr.strip() or f"exit status {result.returncode}",
                    failed_step=name,
                    offending_line_number=number or None,
                    offending_line=line or None,
                    rolled_back=rolled_back,
                )
            applied.append(family)
        if plan.commit.strip():
            result = run.timed("ipsets.commit", ["ipset", "restore"], plan.commit)
            if result.returncode != 0:
                failure = run.ipset_failure("ipsets.commit", result, plan.commit)
                rolled_back = self._roll_back(applied, rollback, snapshots, run.steps, run.warnings)
                run.abort_ipsets()
                return run.finish(**failure, rolled_back=rolled_back)
        if plan.cleanup.strip():
            result = run.timed("ipsets.cleanup", ["ipset", "restore"], plan.cleanup)
            if result.returncode != 0:
                # The new rules are in force; a leftover set is untidy, not wrong.
                run.warnings.append(f"ipsets.cleanup: {result.stderr.strip()}")
        return run.finish()

    def _snapshot_tables(
        self, family: int, tables: Iterable[str], steps: list[tuple[str, float]]
    ) -> dict[str, str]:
        snapshot = {}
        for table in tables:
            step_started = time.perf_counter()
            saved = self._run([save_command(family), "-t", table]).stdout
            steps.append((f"snapshot.{family}.{table}", time.perf_counter() - step_started))
            snapshot[table] = saved
        return snapshot

    def _roll_back(
        self,
        applied: list[int],
        rollback: DeltaLike | None,
        snapshots: dict[int, dict[str, str]],
        steps: list[tuple[str, float]],
        warnings: list[str],
    ) -> bool:
        if not applied:
            return False
        rolled_back = True
        rollback_texts = dict(rollback.iptables) if rollback is not None else {}
        for family in applied:
            step_started = time.perf_counter()
            if rollback is not None:
                text = rollback_texts.get(family, "")
                results = (
                    [self._run(restore_argv(family, text, "--noflush"), input=text, check=False)]
                    if text.strip()
                    else []
                )
            else:
                # A whole-table restore (no --noflush) puts back exactly what was saved.
                results = [
                    self._run([restore_command(family), "-T", table], input=saved, check=False)
                    for table, saved in snapshots.get(family, {}).items()
                ]
            steps.append((f"rollback.{family}", time.perf_counter() - step_started))
            for result in results:
                if result.returncode != 0:
                    rolled_back = False
                    warnings.append(f"rollback of IPv{family} failed: {result.stderr.strip()}")
        return rolled_back

    def ensure_builtin_jumps(self, compiled: CompiledHost) -> int:
        """Make sure the jumps from the built-in chains into ours exist; return how many added.

        Incremental deltas never touch built-in chains (other software owns them too), so this
        runs at agent start and when drift is found. Existing rules are left where they are.
        """
        added = 0
        for family in (4, 6):
            wanted = _builtin_lines(render_iptables(compiled, family))
            lines = []
            for table, chain_lines in wanted.items():
                for chain, specs in chain_lines.items():
                    missing = [spec for spec in specs if not self._has_rule(family, table, spec)]
                    for spec in missing:
                        position = specs.index(spec) + 1
                        lines.append((table, f"-I {chain} {position} {spec.split(' ', 2)[2]}"))
            if not lines:
                continue
            text = ""
            for table in TABLES:
                table_lines = [line for t, line in lines if t == table]
                if table_lines:
                    text += f"*{table}\n" + "\n".join(table_lines) + "\nCOMMIT\n"
            self._run([restore_command(family), "--noflush"], input=text)
            added += len(lines)
        return added

    def put_jumps_first(
        self, compiled: CompiledHost, family: int, chains: Iterable[tuple[str, str]], saved: str
    ) -> int:
        """Move our jumps back to the top of built-in chains, in compiled order, in one atomic
        `iptables-restore --noflush`; every other rule stays, in its order, behind them.

        `saved` is the `iptables-save` text the decision was made on: our jumps are deleted as
        the kernel spells them there, then inserted as we render them. Returns rules moved.
        """
        wanted = _builtin_lines(render_iptables(compiled, family))
        by_table: dict[str, list[str]] = {}
        moved = 0
        for table, chain in sorted(set(chains)):
            specs = wanted.get(table, {}).get(chain, [])
            lines = [
                "-D " + line[3:]
                for line in _saved_lines(saved, table, chain)
                if self._jumps_to_ours(line)
            ]
            lines += [
                f"-I {chain} {position} {spec.split(' ', 2)[2]}"
                for position, spec in enumerate(specs, start=1)
            ]
            by_table.setdefault(table, []).extend(lines)
            moved += len(specs)
        text = "".join(
            f"*{table}\n" + "\n".join(lines) + "\nCOMMIT\n"
            for table, lines in by_table.items()
            if lines
        )
        if text:
            self._run([restore_command(family), "--noflush"], input=text)
        return moved

    def set_sysctls(self, values: dict[str, int]) -> None:
        """Write sysctls of this host's namespace (the bridge's call-iptables switches)."""
        if values:
            settings = [f"{name}={value}" for name, value in sorted(values.items())]
            self._run(["sysctl", "-q", "-w", *settings])

    def _has_rule(self, family: int, table: str, spec: str) -> bool:
        # spec is "-A CHAIN args..."; -C takes the same arguments.
        argv = shlex.split(spec)
        result = self._run(
            [iptables_command(family), "-w", "-t", table, "-C", *argv[1:]], check=False
        )
        return result.returncode == 0


def _saved_lines(saved: str, table: str, chain: str) -> list[str]:
    """The "-A CHAIN ..." lines of one chain of one table in `iptables-save` text."""
    current = ""
    found = []
    for line in saved.splitlines():
        if line.startswith("*"):
            current = line[1:].strip()
        elif current == table and line.startswith(f"-A {chain} "):
            found.append(line)
    return found


def _builtin_lines(restore_text: str) -> dict[str, dict[str, list[str]]]:
    """table -> built-in chain -> its "-A CHAIN ..." lines, in order, from restore input."""
    result: dict[str, dict[str, list[str]]] = {}
    table = ""
    for line in restore_text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(("-A ", "-I ")):
            parts = line.split(" ", 2)
            if parts[1] in BUILTIN_CHAINS:
                if parts[0] == "-I" and len(parts) == 3:
                    rest = parts[2].split(" ", 1)
                    # "-I CHAIN N spec" or "-I CHAIN spec": keep only the spec.
                    spec = rest[1] if rest[0].isdigit() and len(rest) > 1 else parts[2]
                    line = f"-A {parts[1]} {spec}"
                result.setdefault(table, {}).setdefault(parts[1], []).append(line)
    return result


class _ApplyRun:
    """The bookkeeping of one `HostFirewall.apply`: timed steps, warnings, line counts."""

    def __init__(self, firewall: HostFirewall, delta: DeltaLike) -> None:
        self.firewall = firewall
        self.plan = delta.ipsets
        self.started = time.perf_counter()
        self.steps: list[tuple[str, float]] = []
        self.warnings: list[str] = []
        self.families = [(family, text) for family, text in delta.iptables if text.strip()]
        self.rule_lines: dict[int, int] = {}
        self.chain_lines: dict[int, int] = {}
        for family, text in self.families:
            self.rule_lines[family], self.chain_lines[family] = _count_lines(text)
        self.ipset_lines = sum(
            len([line for line in text.splitlines() if line.strip()])
            for text in (self.plan.prepare, self.plan.commit, self.plan.cleanup)
        )

    def timed(self, name: str, argv: Sequence[str], text: str) -> CommandResult:
        step_started = time.perf_counter()
        result = self.firewall._run(argv, input=text, check=False)
        self.steps.append((name, time.perf_counter() - step_started))
        return result

    def ipset_failure(self, name: str, result: CommandResult, text: str) -> dict[str, object]:
        number, line = offending_line(result.stderr, text, ipset=True)
        return {
            "error": result.stderr.strip() or f"exit status {result.returncode}",
            "failed_step": name,
            "offending_line_number": number or None,
            "offending_line": line or None,
        }

    def abort_ipsets(self) -> None:
        if self.plan.abort.strip():
            result = self.timed("ipsets.abort", ["ipset", "restore"], self.plan.abort)
            if result.returncode != 0:
                self.warnings.append(f"ipsets.abort: {result.stderr.strip()}")

    def finish(self, **failure: object) -> ApplyReport:
        return ApplyReport(
            ok=not failure,
            duration_s=time.perf_counter() - self.started,
            steps=tuple(self.steps),
            rule_lines=self.rule_lines,
            chain_lines=self.chain_lines,
            ipset_lines=self.ipset_lines,
            warnings=tuple(self.warnings),
            **failure,  # type: ignore[arg-type]
        )
