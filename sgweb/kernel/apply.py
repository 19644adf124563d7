"""Put compiled firewall state into a kernel (a network namespace or the host) and read it back.

Apply order (issue 2/4): ipsets built aside (prepare) -> iptables-restore --noflush per family ->
sets swapped in (commit) -> sets nobody references any more removed (cleanup). If a step fails
the prepared sets are dropped (abort) and a family that already went in is put back, so the
previous rules stay in force; the report quotes the line the kernel refused.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sgweb.firewall.ir import BUILTIN_CHAINS, CompiledHost
from sgweb.firewall.model import DEFAULT_CHAIN_PREFIX
from sgweb.kernel.runner import CommandError, CommandResult, CommandRunner

# The neutron-filter-top chain is shared by Neutron's agents and has no wrapper prefix.
FILTER_TOP = "neutron-filter-top"
TABLES = ("raw", "filter")

_IPTABLES_LINE = (
    re.compile(r"Error occurred at line: (\d+)"),
    re.compile(r"line (\d+) failed"),
)
_IPSET_LINE = re.compile(r"Error in line (\d+)")


class IpsetPlanLike(Protocol):
    prepare: str
    commit: str
    cleanup: str
    abort: str


class DeltaLike(Protocol):
    """What `sgweb.firewall.incremental.diff` returns; only these fields are used here."""

    ipsets: IpsetPlanLike
    iptables: tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class IpsetPlan:
    prepare: str = ""
    commit: str = ""
    cleanup: str = ""
    abort: str = ""


@dataclass(frozen=True, slots=True)
class PlainDelta:
    """A hand-made delta (tests, full applies): the same shape as the incremental one."""

    ipsets: IpsetPlan = field(default_factory=IpsetPlan)
    iptables: tuple[tuple[int, str], ...] = ()


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

    def step_seconds(self, name: str) -> float:
        return sum(seconds for step, seconds in self.steps if step == name)

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


def _restore_command(family: int) -> str:
    return "iptables-restore" if family == 4 else "ip6tables-restore"


def _save_command(family: int) -> str:
    return "iptables-save" if family == 4 else "ip6tables-save"


def _iptables_command(family: int) -> str:
    return "iptables" if family == 4 else "ip6tables"


def _tables_in(text: str) -> list[str]:
    return [line[1:].strip() for line in text.splitlines() if line.startswith("*")]


@dataclass(frozen=True, slots=True)
class Counter:
    packets: int
    bytes: int


class HostFirewall:
    """The kernel side of one host: a namespace (or None for the runner's own namespace)."""

    def __init__(
        self,
        runner: CommandRunner,
        netns: str | None = None,
        chain_prefix: str = DEFAULT_CHAIN_PREFIX,
    ) -> None:
        self.runner = runner
        self.netns = netns
        self.chain_prefix = chain_prefix

    def _run(
        self, argv: Sequence[str], *, input: str | None = None, check: bool = True
    ) -> CommandResult:
        return self.runner.run(argv, input=input, netns=self.netns, check=check, timeout=300)

    def owns_chain(self, name: str) -> bool:
        return name.startswith(self.chain_prefix) or name == FILTER_TOP

    # -- applying -----------------------------------------------------------------------------

    def apply(self, delta: DeltaLike, *, rollback: DeltaLike | None = None) -> ApplyReport:
        """Apply a delta atomically per step; see the module docstring for the order.

        `rollback` is the delta from the new state back to the previous one (cheap to compute
        from the two compiled states). It is used only if one family went in and a later step
        failed; without it the affected tables are saved before the first family is applied,
        which costs an `iptables-save`, and restored from that.
        """
        started = time.perf_counter()
        steps: list[tuple[str, float]] = []
        warnings: list[str] = []
        rule_lines: dict[int, int] = {}
        chain_lines: dict[int, int] = {}
        plan = delta.ipsets
        ipset_lines = sum(
            len([line for line in text.splitlines() if line.strip()])
            for text in (plan.prepare, plan.commit, plan.cleanup)
        )
        families = [(family, text) for family, text in delta.iptables if text.strip()]
        for family, text in families:
            rule_lines[family], chain_lines[family] = _count_lines(text)

        def finish(**failure: object) -> ApplyReport:
            return ApplyReport(
                ok=not failure,
                duration_s=time.perf_counter() - started,
                steps=tuple(steps),
                rule_lines=rule_lines,
                chain_lines=chain_lines,
                ipset_lines=ipset_lines,
                warnings=tuple(warnings),
                **failure,  # type: ignore[arg-type]
            )

        def timed(name: str, argv: Sequence[str], text: str) -> CommandResult:
            step_started = time.perf_counter()
            result = self._run(argv, input=text, check=False)
            steps.append((name, time.perf_counter() - step_started))
            return result

        def ipset_failure(name: str, result: CommandResult, text: str) -> dict[str, object]:
            number, line = offending_line(result.stderr, text, ipset=True)
            return {
                "error": result.stderr.strip() or f"exit status {result.returncode}",
                "failed_step": name,
                "offending_line_number": number or None,
                "offending_line": line or None,
            }

        def abort_ipsets() -> None:
            if plan.abort.strip():
                result = timed("ipsets.abort", ["ipset", "restore"], plan.abort)
                if result.returncode != 0:
                    warnings.append(f"ipsets.abort: {result.stderr.strip()}")

        if plan.prepare.strip():
            result = timed("ipsets.prepare", ["ipset", "restore"], plan.prepare)
            if result.returncode != 0:
                abort_ipsets()
                return finish(**ipset_failure("ipsets.prepare", result, plan.prepare))

        snapshots: dict[int, dict[str, str]] = {}
        applied: list[int] = []
        for index, (family, text) in enumerate(families):
            more_to_come = index + 1 < len(families) or bool(plan.commit.strip())
            if rollback is None and more_to_come:
                snapshots[family] = self._snapshot_tables(family, _tables_in(text), steps)
            name = f"iptables.{family}"
            result = timed(name, [_restore_command(family), "--noflush"], text)
            if result.returncode != 0:
                number, line = offending_line(result.stderr, text)
                rolled_back = self._roll_back(applied, rollback, snapshots, steps, warnings)
                abort_ipsets()
                return finish(
                    error=result.stderr.strip() or f"exit status {result.returncode}",
                    failed_step=name,
                    offending_line_number=number or None,
                    offending_line=line or None,
                    rolled_back=rolled_back,
                )
            applied.append(family)

        if plan.commit.strip():
            result = timed("ipsets.commit", ["ipset", "restore"], plan.commit)
            if result.returncode != 0:
                failure = ipset_failure("ipsets.commit", result, plan.commit)
                rolled_back = self._roll_back(applied, rollback, snapshots, steps, warnings)
                abort_ipsets()
                return finish(**failure, rolled_back=rolled_back)

        if plan.cleanup.strip():
            result = timed("ipsets.cleanup", ["ipset", "restore"], plan.cleanup)
            if result.returncode != 0:
                # The new rules are in force; a leftover set is untidy, not wrong.
                warnings.append(f"ipsets.cleanup: {result.stderr.strip()}")
        return finish()

    def _snapshot_tables(
        self, family: int, tables: Iterable[str], steps: list[tuple[str, float]]
    ) -> dict[str, str]:
        snapshot = {}
        for table in tables:
            step_started = time.perf_counter()
            saved = self._run([_save_command(family), "-t", table]).stdout
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
                    [self._run([_restore_command(family), "--noflush"], input=text, check=False)]
                    if text.strip()
                    else []
                )
            else:
                # A whole-table restore (no --noflush) puts back exactly what was saved.
                results = [
                    self._run([_restore_command(family), "-T", table], input=saved, check=False)
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
        from sgweb.firewall.render import render_iptables  # the only place with rule syntax

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
            self._run([_restore_command(family), "--noflush"], input=text)
            added += len(lines)
        return added

    def _has_rule(self, family: int, table: str, spec: str) -> bool:
        # spec is "-A CHAIN args..."; -C takes the same arguments.
        argv = shlex.split(spec)
        result = self._run(
            [_iptables_command(family), "-w", "-t", table, "-C", *argv[1:]], check=False
        )
        return result.returncode == 0

    # -- reading back -------------------------------------------------------------------------

    def read_chain(self, chain: str, family: int = 4, table: str = "filter") -> list[Counter]:
        """Per-rule counters of one chain, by position (index 0 is rule 1)."""
        listing = self._run(
            [_iptables_command(family), "-w", "-t", table, "-L", chain, "-v", "-x", "-n"]
        ).stdout
        counters = []
        for line in listing.splitlines()[2:]:
            fields = line.split(None, 2)
            if len(fields) >= 2 and fields[0].isdigit():
                counters.append(Counter(int(fields[0]), int(fields[1])))
        return counters

    def read_chains(
        self, chains: Iterable[str], family: int = 4, table: str = "filter"
    ) -> dict[str, list[Counter]]:
        """Counters of a few chains (a watched port's i/o/s chains), one cheap call per chain;
        a chain that does not exist (any more) reads as empty."""
        result = {}
        for chain in chains:
            try:
                result[chain] = self.read_chain(chain, family, table)
            except CommandError:
                result[chain] = []
        return result

    def read_counters(
        self, family: int = 4, tables: Sequence[str] = TABLES, *, owned_only: bool = False
    ) -> dict[tuple[str, str], list[Counter]]:
        """Per-rule counters of every chain in one `iptables-save -c` per table."""
        result: dict[tuple[str, str], list[Counter]] = {}
        for table in tables:
            saved = self._run([_save_command(family), "-c", "-t", table]).stdout
            for line in saved.splitlines():
                if line.startswith(":"):
                    chain = line[1:].split(" ", 1)[0]
                    if not owned_only or self.owns_chain(chain):
                        result.setdefault((table, chain), [])
                    continue
                if not line.startswith("["):
                    continue
                counts, _dash_a, chain = line.split(" ", 3)[:3]
                if owned_only and not self.owns_chain(chain):
                    continue
                packets, bytes_ = counts.strip("[]").split(":")
                result.setdefault((table, chain), []).append(Counter(int(packets), int(bytes_)))
        return result

    def zero_counters(self, family: int = 4, tables: Sequence[str] = TABLES) -> None:
        for table in tables:
            self._run([_iptables_command(family), "-w", "-t", table, "-Z"])

    def save(self, family: int = 4, tables: Sequence[str] = TABLES) -> str:
        """Our chains and our jumps, counters zeroed: comparable across namespaces."""
        out = []
        for table in tables:
            saved = self._run([_save_command(family), "-t", table]).stdout
            kept = []
            for line in saved.splitlines():
                if line.startswith(":"):
                    name = line[1:].split(" ", 1)[0]
                    if self.owns_chain(name):
                        kept.append(f":{name} - [0:0]")
                elif line.startswith("-A "):
                    chain = line.split(" ", 2)[1]
                    if self.owns_chain(chain) or (
                        chain in BUILTIN_CHAINS and self._jumps_to_ours(line)
                    ):
                        kept.append(line)
            if kept:
                out.append(f"*{table}")
                out.extend(kept)
                out.append("COMMIT")
        return "\n".join(out) + ("\n" if out else "")

    def _jumps_to_ours(self, line: str) -> bool:
        parts = line.split()
        for flag in ("-j", "-g"):
            if flag in parts:
                target_index = parts.index(flag) + 1
                if target_index < len(parts) and self.owns_chain(parts[target_index]):
                    return True
        return False

    def save_ipsets(self, names: Iterable[str] | None = None) -> str:
        """`ipset save` of the sets with members sorted (the kernel lists them in hash order)."""
        wanted = set(names) if names is not None else None
        saved = self._run(["ipset", "save"]).stdout
        creates: dict[str, str] = {}
        members: dict[str, list[str]] = {}
        for line in saved.splitlines():
            parts = line.split()
            if len(parts) < 2:
                continue
            name = parts[1]
            if wanted is not None and name not in wanted:
                continue
            if parts[0] == "create":
                # initval is the hash seed the kernel picked at random: not part of the state.
                creates[name] = re.sub(r" initval 0x[0-9a-f]+", "", line)
                members.setdefault(name, [])
            elif parts[0] == "add":
                members.setdefault(name, []).append(line)
        out = []
        for name in sorted(creates):
            out.append(creates[name])
            out.extend(sorted(members.get(name, [])))
        return "\n".join(out) + ("\n" if out else "")

    def ipset_names(self) -> list[str]:
        listing = self._run(["ipset", "list", "-n"]).stdout
        return sorted(line.strip() for line in listing.splitlines() if line.strip())

    def flush_conntrack(
        self,
        addresses: Iterable[str],
        *,
        zone: int | None = None,
        protocol: str | None = None,
        port: int | None = None,
    ) -> int:
        """Delete connection-tracking entries from or to the given addresses; return how many.

        Used when rules are removed, so connections they allowed stop too ("removed means
        removed"). Narrow by zone, protocol and destination port where the removed rule was.
        """
        deleted = 0
        for address in addresses:
            family = "ipv6" if ":" in address else "ipv4"
            for direction in ("-s", "-d"):
                argv = ["conntrack", "-D", "-f", family, direction, address]
                if zone is not None:
                    argv += ["-w", str(zone)]
                if protocol is not None:
                    argv += ["-p", protocol]
                    if port is not None:
                        argv += ["--dport", str(port)]
                result = self._run(argv, check=False)
                found = re.search(r"(\d+) flow entries have been deleted", result.stderr)
                if found:
                    deleted += int(found.group(1))
                elif result.returncode != 0 and "0 flow entries" not in result.stderr:
                    raise CommandError(result)
        return deleted


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


def full_delta(compiled: CompiledHost) -> PlainDelta:
    """Everything of `compiled`, jumps from the built-in chains included: for a fresh kernel."""
    from sgweb.firewall.render import render_ipsets, render_iptables

    return PlainDelta(
        ipsets=IpsetPlan(prepare=render_ipsets(compiled)),
        iptables=((4, render_iptables(compiled, 4)), (6, render_iptables(compiled, 6))),
    )


def removal_delta(compiled: CompiledHost) -> PlainDelta:
    """Everything of `compiled` taken out again: our jumps deleted from the built-in chains, our
    chains flushed then deleted, our sets destroyed. The rollback of a full apply into a kernel
    that had none of it, and what `lab down` or a decommissioned host needs.
    """
    from sgweb.firewall.render import render_rule

    texts = []
    for family in (4, 6):
        sections = []
        for table in compiled.family(family).tables:
            jumps = [
                "-D" + render_rule(rule)[2:]
                for chain in table.chains
                if not chain.owned
                for rule in chain.rules
            ]
            owned = [chain.name for chain in table.chains if chain.owned]
            if not jumps and not owned:
                continue
            lines = [f"*{table.name}", *jumps]
            lines += [f":{name} - [0:0]" for name in owned]  # flushing drops their references
            lines += [f"-X {name}" for name in owned]
            lines.append("COMMIT")
            sections.append("\n".join(lines) + "\n")
        if sections:
            texts.append((family, "".join(sections)))
    cleanup = "".join(f"destroy {ipset.name}\n" for ipset in compiled.ipsets)
    return PlainDelta(ipsets=IpsetPlan(cleanup=cleanup), iptables=tuple(texts))
