"""Reading a kernel's firewall back: per-rule counters, our chains and sets, conntrack.

The read side of HostFirewall (see `sgweb.kernel.apply`), usable on its own by whatever only
watches: the live counters read a port's chains by position (`iptables -L CHAIN -v -x -n`,
about 2 ms per chain on nf_tables), drift checks compare `save()` with what was applied.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sgweb.firewall.ir import BUILTIN_CHAINS
from sgweb.firewall.model import DEFAULT_CHAIN_PREFIX
from sgweb.kernel.runner import CommandError, CommandResult, CommandRunner

# The neutron-filter-top chain is shared by Neutron's agents and has no wrapper prefix.
FILTER_TOP = "neutron-filter-top"
TABLES = ("raw", "filter")


def restore_command(family: int) -> str:
    return "iptables-restore" if family == 4 else "ip6tables-restore"


def save_command(family: int) -> str:
    return "iptables-save" if family == 4 else "ip6tables-save"


def iptables_command(family: int) -> str:
    return "iptables" if family == 4 else "ip6tables"


@dataclass(frozen=True, slots=True)
class Counter:
    packets: int
    bytes: int


class KernelReadback:
    """One host's kernel (a network namespace, or None for the runner's own) seen from above."""

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

    # -- counters ------------------------------------------------------------------------------

    def read_chain(self, chain: str, family: int = 4, table: str = "filter") -> list[Counter]:
        """Per-rule counters of one chain, by position (index 0 is rule 1)."""
        listing = self._run(
            [iptables_command(family), "-w", "-t", table, "-L", chain, "-v", "-x", "-n"]
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
            saved = self._run([save_command(family), "-c", "-t", table]).stdout
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

    def save(self, family: int = 4, tables: Sequence[str] = TABLES) -> str:
        """Our chains and our jumps, counters zeroed: comparable across namespaces."""
        return self.ours_only(self.save_tables(family, tables))

    def save_tables(self, family: int = 4, tables: Sequence[str] = TABLES) -> str:
        """`iptables-save` of the tables as the kernel has them, everyone's rules included
        (drift checks look at what else sits in the built-in chains)."""
        return "".join(self._run([save_command(family), "-t", table]).stdout for table in tables)

    def list_rules(self, family: int, table: str, chain: str) -> str:
        """`iptables -S CHAIN`: one chain's rules as "-A CHAIN ..." lines (its policy line too)."""
        return self._run([iptables_command(family), "-w", "-t", table, "-S", chain]).stdout

    def nft_table(self, family: str, name: str) -> dict[str, Any]:
        """`nft -j list table`: one table's chains (with hooks) and rules, as JSON."""
        document: dict[str, Any] = json.loads(
            self._run(["nft", "-j", "list", "table", family, name]).stdout or "{}"
        )
        return document

    def ours_only(self, saved: str) -> str:
        """The part of `iptables-save` text that is ours, counters zeroed."""
        out: list[str] = []
        kept: list[str] = []
        table = ""

        def close_table() -> None:
            if kept:
                out.extend([f"*{table}", *kept, "COMMIT"])
            kept.clear()

        for line in saved.splitlines():
            if line.startswith("*"):
                close_table()
                table = line[1:].strip()
            elif line.startswith(":"):
                name = line[1:].split(" ", 1)[0]
                if self.owns_chain(name):
                    kept.append(f":{name} - [0:0]")
            elif line.startswith("-A "):
                chain = line.split(" ", 2)[1]
                if self.owns_chain(chain) or (
                    chain in BUILTIN_CHAINS and self._jumps_to_ours(line)
                ):
                    kept.append(line)
        close_table()
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

        One `conntrack -D` process per address and direction: for tests and by hand. The agent
        cuts in bulk over netlink instead (`sgweb.kernel.conntrack`), `bench.detach --old`
        compares the two. Narrow by zone, protocol and destination port.
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
