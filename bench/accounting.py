"""`python -m bench.accounting [--ports 1000]`: what always-on accounting costs a host (root).

In a scratch namespace holding an N-port host (the generated scenario, applied by the agent):

* read: one accounting tick (read the counters of the chains that can have changed, the
  per-origin deltas, the document, the baseline written to Redis) on an idle host, with 10% of
  the ports busy, and with every rule hit (the worst case: every chain to read), the last both
  within the agent's budget for a reading (`SGWEB_ACCOUNTING_BUDGET_MS`: the chains it has no time
  for are read first by the next tick; `chains_left_for_the_next_reading`) and without it
  (every chain read and written in one tick);
  wall time, CPU time (user and system) and the CPU share of one core at the accounting
  interval, the load average before and after each case. The document is JSON-encoded inside
  the tick, as the agent's send (Celery) does. Counts are made with `iptables-restore -c`;
  ip6tables-nft 1.8.9 ignores them, so IPv6 counts are written over netlink (`nftcarry`, one
  batch). Then the kernel's side alone: the same dumps of every chain, received and not parsed;
* apply: one group's rule change (a group used by 100 ports gains a rule) applied three ways,
  alternating: re-declaring the changed chains as before issue 12 (counters reset), re-declaring
  them with the counters read just before and written back (`[p:b]`, `iptables-restore -c`),
  and editing them in place (`-D`/`-I`, what the agent does now). The carry's and the in-place
  edit's added cost are relative to the first;
* carry: a full apply (agent start, drift repair) of the host with every rule hit, alternating
  without a carry (every counter reset) and with it (every counter read, restored with `-c`,
  the IPv6 ones written back over netlink in one batch), and that write-back alone.

Prints JSON; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import statistics
import struct
import sys
import time
from collections import deque
from typing import Any

import redis

from bench.agent import _drop, _namespace, _Quiet, _Store, _with_bench_group
from bench.scenarios import generated_scenario
from sgweb.firewall.compiler import CompileCache, compile_host
from sgweb.firewall.incremental import diff
from sgweb.firewall.ir import CompiledHost
from sgweb.firewall.render import render_iptables, rendered_chain
from sgweb.firewall.scenario import load_scenario
from sgweb.kernel import nftcarry
from sgweb.kernel.apply import HostFirewall
from sgweb.kernel.carry import Carried, delta_with_counters, read_carry, with_counters
from sgweb.kernel.deltas import PlainDelta
from sgweb.kernel.nftcarry import CounterWriter, counts_in
from sgweb.kernel.nftcounters import NLMSG_DONE, NLMSG_ERROR, NftCounterReader, _rule_dump_request
from sgweb.kernel.runner import default_runner
from sgweb.wire import accounting as wire
from worker import full_apply
from worker.accounting import AccountingReader
from worker.agent import Agent


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _bump(firewall: HostFirewall, compiled: CompiledHost, by: int, busy: set[str] | None) -> None:
    """Traffic, as counters: every rule on the way of the busy ports' packets (all ports when
    `busy` is None) counts `by` more; the other rules keep their counts. Chains are re-declared
    with every count (`iptables-restore -c`), the built-in chains' jumps deleted and re-added.
    ip6tables-nft ignores the counts it is given, so the IPv6 ones are then written over netlink
    (`nftcarry`, as the agent's carry does), the built-in chains' included."""
    for family in (4, 6):
        now = read_carry(firewall, family)
        table = compiled.family(family).table("filter")
        assert table is not None
        lines: list[str] = []
        for chain in table.chains:
            touched = [busy is None or r.origin.port_id in busy or not r.origin.port_id
                       for r in chain.rules]  # fmt: skip
            if not chain.rules or not any(touched):
                continue
            taken: dict[str, int] = {}
            rendered = rendered_chain(chain).split("\n")
            if chain.owned:
                lines.append(f":{chain.name} - [0:0]")
            for line, hit in zip(rendered, touched, strict=True):
                old = now.get(("filter", chain.name), {}).get(line.lower(), [])
                index = taken.get(line, 0)
                taken[line] = index + 1
                packets = old[index].packets if index < len(old) else 0
                size = old[index].bytes if index < len(old) else 0
                if hit:
                    packets, size = packets + by, size + by * 90
                if not chain.owned:
                    lines.append("-D" + line[2:])
                lines.append(f"[{packets}:{size}] {line}")
        text = "*filter\n" + "\n".join(lines) + "\nCOMMIT\n"
        firewall.apply(PlainDelta(iptables=((family, text),))).raise_for_error()
        if family == 6:  # one batch, as the agent's carry writes it
            builtin = "".join(f":{c.name} -\n" for c in table.chains if not c.owned)
            CounterWriter(firewall.netns).write(
                6, counts_in("*filter\n" + builtin + text[len("*filter\n") :])
            )


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 1)


def _kernel_floor(reader: AccountingReader, runs: int) -> dict[str, Any]:
    """The kernel's side alone: the same per-chain rule dumps as a reading of every chain, the
    buffers received and dropped unparsed (user time here is the send/recv calls)."""
    assert reader.reader is not None and reader.accountant._layout is not None
    netlink = reader.reader.netlink
    chains = [(c.name, c.family) for c in reader.accountant._layout.chains.values()]
    users, systems = [], []
    for _ in range(runs):
        user, system = _cpu()
        for chain, family in chains:
            _dump_unparsed(netlink, chain, family)
        after = _cpu()
        users.append(after[0] - user)
        systems.append(after[1] - system)
    return {"chains": len(chains), "user_ms_median": _median_ms(users),
            "sys_ms_median": _median_ms(systems)}  # fmt: skip


def _dump_unparsed(netlink: NftCounterReader, chain: str, family: int) -> None:
    sock = netlink._sock()
    netlink._sequence = sequence = (netlink._sequence + 1) & 0xFFFFFFFF
    sock.send(_rule_dump_request(chain, family, "filter", sequence))
    while True:
        data = sock.recv(1 << 20)
        length, kind, _flags, seq, _pid = struct.unpack_from("=IHHII", data, len(data) - 20)
        if seq == sequence and kind == NLMSG_DONE and length == 20:
            return
        if struct.unpack_from("=H", data, 4)[0] == NLMSG_ERROR:
            return


def read_figures(
    agent: Agent, runs: int, interval_s: float, budget_ms: float = wire.DEFAULT_BUDGET_MS
) -> dict[str, Any]:
    """Ticks of the agent's accounting reader; the document is encoded as the agent's send
    does (Celery's JSON), inside the timing."""
    client = redis.Redis.from_url("redis://127.0.0.1:6379/11")
    prefix = f"sgwb-{secrets.token_hex(3)}"
    sent: deque[str] = deque(maxlen=1)  # the last only: a real agent keeps none

    def send(document: dict[str, Any]) -> None:
        sent.append(json.dumps(document))

    reader = AccountingReader(agent, client, prefix, send, interval_s, budget_ms)
    reader.settle_heap = True  # as the agent's reader does
    assert agent.applied is not None
    compiled = agent.applied.compiled
    ports = [port.id for port in agent.applied.state.ports]
    busy_10pct = set(ports[: len(ports) // 10])
    # name -> (busy ports, None: all; whether the reading's time budget applies)
    cases = {"idle": (set(), True), "busy_10pct": (busy_10pct, True),
             "every_rule_hit": (None, True), "every_rule_hit_no_budget": (None, False)}  # fmt: skip
    budget = reader.budget_s
    result: dict[str, Any] = {"budget_ms": budget * 1000 if budget else None}
    bumps = 0
    try:
        reader.tick()  # the baseline: everything read once
        for name, (busy, budgeted) in cases.items():
            assert reader.reader is not None
            reader.reader.budget_s = reader.budget_s if budgeted else None
            walls, users, systems, chains = [], [], [], []
            loads = [os.getloadavg()[0]]
            for _run in range(runs):
                if busy is None or busy:
                    bumps += 1
                    _bump(agent.firewall, compiled, bumps, busy)
                wall, (user, system) = time.perf_counter(), _cpu()
                document = reader.tick()
                after = _cpu()
                walls.append(time.perf_counter() - wall)
                users.append(after[0] - user)
                systems.append(after[1] - system)
                assert document is not None and reader.reader is not None
                chains.append(reader.reader.chains_read)
            loads.append(os.getloadavg()[0])
            cpu = [u + s for u, s in zip(users, systems, strict=True)]
            result[name] = {
                "chains_read": int(statistics.median(chains)),
                "chains_left_for_the_next_reading": len(reader.reader.left),
                "learnt_read_us_per_rule_and_after_walk_ms": [
                    round(reader.reader.read_rule_s * 1e6, 2),
                    round(reader.reader.after_s * 1e3, 1),
                ],
                "origins_in_a_document": len(json.loads(sent[-1])["origins"]),
                "document_bytes": len(sent[-1]),
                "tick_ms_median": _median_ms(walls),
                "tick_ms_p95": round(_p95(walls) * 1000, 1),
                "tick_cpu_ms_median": _median_ms(cpu),
                "tick_user_ms_median": _median_ms(users),
                "tick_sys_ms_median": _median_ms(systems),
                "cpu_share_of_a_core_at_interval_pct": round(
                    statistics.median(cpu) / interval_s * 100, 3
                ),
                "load_1min_before_after": loads,
            }
        result["kernel_dumps_of_every_chain"] = {
            **_kernel_floor(reader, runs),
            "load_1min": os.getloadavg()[0],
        }
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
    result["kernel_rules"] = sum(
        len(chain.rules)
        for family in (4, 6)
        for table in compiled.family(family).tables
        for chain in table.chains
    )
    result["chains"] = sum(
        1 for family in (4, 6) for table in compiled.family(family).tables for _ in table.chains
    )
    result["interval_s"] = interval_s
    return result


def _carried_for(
    reader: NftCounterReader, before: CompiledHost, chains: tuple[str, ...]
) -> dict[int, Carried]:
    """Counters of the chains about to be re-declared, by rule text (what a carry reads)."""
    carried: dict[int, Carried] = {}
    for family in (4, 6):
        for table in before.family(family).tables:
            for chain in table.chains:
                if chain.name not in chains or not chain.rules:
                    continue
                counters = reader.read_chain(chain.name, family, table.name)
                lines = rendered_chain(chain).split("\n")
                by_text = carried.setdefault(family, {}).setdefault((table.name, chain.name), {})
                for line, counter in zip(lines, counters, strict=False):
                    by_text.setdefault(line.lower(), []).append(counter)
    return carried


def apply_figures(firewall: HostFirewall, base: Any, runs: int) -> dict[str, Any]:
    cache = CompileCache()
    before = compile_host(_with_bench_group(base, extra_rules=0), cache=cache)
    after = compile_host(_with_bench_group(base, extra_rules=1), cache=cache)
    firewall.apply(diff(None, before, include_builtin_jumps=True)).raise_for_error()
    reader = NftCounterReader(firewall.netns)
    times: dict[str, list[float]] = {"rewrite": [], "carry": [], "in_place": []}
    changed = diff(before, after, in_place=False).changed_chains
    for _ in range(runs):
        for mode in times:
            started = time.perf_counter()
            if mode == "rewrite":
                delta: Any = diff(before, after, in_place=False)
            elif mode == "in_place":
                delta = diff(before, after)
            else:
                plain = diff(before, after, in_place=False)
                carried = _carried_for(reader, before, changed)
                delta = PlainDelta(
                    ipsets=plain.ipsets,  # type: ignore[arg-type]
                    iptables=tuple(
                        (f, with_counters(t, carried.get(f, {}))) for f, t in plain.iptables
                    ),
                )
            firewall.apply(delta).raise_for_error()
            times[mode].append(time.perf_counter() - started)
            firewall.apply(diff(after, before, in_place=False)).raise_for_error()  # untimed
    median = {mode: statistics.median(values) for mode, values in times.items()}
    return {
        "changed_chains": len(changed),
        **{f"{mode}_ms_median": round(value * 1000, 1) for mode, value in median.items()},
        **{f"{mode}_ms_p95": round(_p95(values) * 1000, 1) for mode, values in times.items()},
        "carry_added_cost_pct": round((median["carry"] / median["rewrite"] - 1) * 100, 1),
        "in_place_added_cost_pct": round((median["in_place"] / median["rewrite"] - 1) * 100, 1),
        "in_place_vs_carry_pct": round((median["in_place"] / median["carry"] - 1) * 100, 1),
    }


def carry_figures(firewall: HostFirewall, state: Any, runs: int) -> dict[str, Any]:
    """A full apply of a host whose every rule was hit (by `_bump`, untimed, before each),
    without a carry and with it, alternating; then the IPv6 write-back alone."""
    compiled = compile_host(state)
    firewall.apply(diff(None, compiled, include_builtin_jumps=True)).raise_for_error()
    whole = full_apply.with_existing_sets(diff(None, compiled))
    times: dict[str, list[float]] = {"plain": [], "carry": []}
    carried: dict[int, Carried] = {}
    loads = [os.getloadavg()[0]]
    for run in range(runs):
        for mode, values in times.items():
            _bump(firewall, compiled, 1 + run, None)
            started = time.perf_counter()
            if mode == "plain":
                report = full_apply.apply_full(firewall, compiled, whole)
            else:
                carried = {family: read_carry(firewall, family) for family in (4, 6)}
                delta = delta_with_counters(whole, carried)
                report = full_apply.apply_full(firewall, compiled, delta, carried)
            values.append(time.perf_counter() - started)
            assert report.ok and not report.warnings, (report.error, report.warnings)
    loads.append(os.getloadavg()[0])
    ipv6 = firewall.read_counters(6, ("filter",))
    at_zero = sum(1 for counters in ipv6.values() for c in counters if not c.packets)
    # The write-back alone: what the last carry's restore input asks (the same counts again).
    text = with_counters(render_iptables(compiled, 6), carried[6])
    writes, rules = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        rules = nftcarry.write_back(firewall.netns, 6, text, whole_tables=True)
        writes.append(time.perf_counter() - started)
    median = {mode: statistics.median(values) for mode, values in times.items()}
    return {
        "ipv6_rules": sum(len(counters) for counters in ipv6.values()),
        "ipv6_rules_at_zero_after_the_carry": at_zero,
        **{f"full_apply_{mode}_ms_median": round(v * 1000, 1) for mode, v in median.items()},
        "carry_added_cost_pct": round((median["carry"] / median["plain"] - 1) * 100, 1),
        "ipv6_write_back_rules": rules,
        "ipv6_write_back_ms_median": _median_ms(writes),
        "ipv6_write_back_us_a_rule": round(statistics.median(writes) / max(rules, 1) * 1e6, 1),
        "load_1min_before_after": [*loads, os.getloadavg()[0]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accounting")
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--interval", type=float, default=wire.DEFAULT_INTERVAL_S)
    parser.add_argument(
        "--budget-ms", type=float, default=wire.DEFAULT_BUDGET_MS,
        help="the agent's read budget for the budgeted cases (SGWEB_ACCOUNTING_BUDGET_MS)",
    )  # fmt: skip
    parser.add_argument(
        "--only", choices=("read", "apply", "carry"), help="one part of the figures"
    )
    args = parser.parse_args(argv)
    state = load_scenario(generated_scenario(args.ports))
    result: dict[str, Any] = {"ports": len(state.ports)}
    if args.only in (None, "read"):
        netns = _namespace()
        try:
            store = _Store()
            agent = Agent("bench", store, HostFirewall(default_runner(), netns), _Quiet())
            store.publish(1, state)
            agent.sync(1)
            result["accounting_read"] = read_figures(
                agent, args.runs, args.interval, args.budget_ms
            )
        finally:
            _drop(netns)
    if args.only in (None, "apply"):
        netns = _namespace()
        try:
            result["group_change_apply"] = apply_figures(
                HostFirewall(default_runner(), netns), state, args.runs
            )
            result["group_change_apply"]["load_1min"] = os.getloadavg()[0]
        finally:
            _drop(netns)
    if args.only in (None, "carry"):
        netns = _namespace()
        try:
            firewall = HostFirewall(default_runner(), netns)
            result["full_apply_carry"] = carry_figures(firewall, state, min(args.runs, 5))
        finally:
            _drop(netns)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
