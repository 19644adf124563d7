"""Live counters from the agent: read only what browsers watch; show a packet at once.

A thread of the agent. Each tick it asks Redis which chains are watched on this host
(`sgweb.wire.live`); if none, it reads nothing. Otherwise it reads just those chains
(`sgweb.kernel.nftcounters` over netlink, else `HostFirewall.read_chains`), labels each position
with the rule id of the compiled rule there (from the agent's in-memory `CompiledHost`),
publishes one `host-counters` message for the host with rates against the previous published
reading, keeps the latest reading per chain for first paints, and notes when a rule's count rose.

When to publish: the chains are read every `wire.READ_S` (a quarter second; slower if reading
costs much CPU, so the thread stays under a fifth of a core), and a reading goes out as soon as a
counter moved, but at most every `wire.MIN_PUBLISH_GAP_S`, and otherwise once a `wire.TICK_S`
even when nothing moved. A packet thus reaches the browser within a read interval instead of
up to a whole second later, while busy chains still cause about two messages a second, quiet
ones one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from typing import Any

import redis

from sgweb.firewall.ir import CompiledHost
from sgweb.kernel.nftcounters import NftCounterReader
from sgweb.wire import live as wire

log = logging.getLogger("sgweb.agent.live")


def _rule_ids(
    compiled: CompiledHost | None, family: int, table: str, chain: str
) -> list[str | None]:
    if compiled is None:
        return []
    found = compiled.family(family).table(table)
    rules = found.chain(chain) if found is not None else None
    return [rule.origin.rule_id for rule in rules.rules] if rules is not None else []


def _counter_reader(agent: Any) -> Any:
    """Netlink (microseconds per chain) where nf_tables answers, else `iptables -L` per chain."""
    reader = NftCounterReader(agent.firewall.netns)
    if reader.available():
        return reader
    log.info("nf_tables netlink unavailable: reading counters with iptables -L")
    return agent.firewall


class CounterStreamer(threading.Thread):
    def __init__(self, agent: Any, client: Any, prefix: str, every_s: float = wire.TICK_S):
        super().__init__(name="sgweb-live-counters", daemon=True)
        self.agent = agent
        self.client = client
        self.prefix = prefix
        self.every_s = every_s  # the longest time between two published readings
        self.read_s = 0.0
        self.read_every_s = min(wire.READ_S, every_s)
        self.min_gap_s = min(wire.MIN_PUBLISH_GAP_S, every_s)
        self.published_at = 0.0  # monotonic time of the last published reading
        self.reads = 0
        self.stopping = threading.Event()
        # chain key -> (time, [(packets, bytes)]) of the previous reading, for rates
        self.previous: dict[str, tuple[float, list[tuple[int, int]]]] = {}
        self.reader = _counter_reader(agent)
        self.ticks = 0
        self.last_message: dict[str, Any] | None = None
        self.cpu_s = 0.0  # this thread's own CPU (its iptables children are the process's)
        # rule ids per chain key, for the compiled state they were looked up in
        self._ids_compiled: CompiledHost | None = None
        self._ids: dict[str, list[str | None]] = {}

    def _rule_ids(
        self, compiled: CompiledHost | None, key: str, family: int, table: str, chain: str
    ) -> list[str | None]:
        # Finding a chain scans the compiled table (thousands of chains on a big host): once per
        # chain and applied state, not once a tick.
        if compiled is not self._ids_compiled:
            self._ids_compiled, self._ids = compiled, {}
        ids = self._ids.get(key)
        if ids is None:
            ids = self._ids[key] = _rule_ids(compiled, family, table, chain)
        return ids

    def tick(self) -> dict[str, Any] | None:
        """Read the watched chains; publish and return the message when one is due."""
        host = self.agent.host
        watched = wire.watched_chains(self.client, self.prefix, host)
        if not watched:
            self.previous.clear()
            return None
        applied = self.agent.applied
        compiled = applied.compiled if applied is not None else None
        readings = self._read(watched)
        if not self._due(readings):
            return None
        self.published_at = time.monotonic()
        now = time.time()
        last_hits: dict[str, float] = {}
        message_chains = [
            self._chain_message(key, reading, compiled, now, last_hits)
            for key, reading in readings.items()
        ]
        for key in set(self.previous) - set(readings):
            del self.previous[key]
        message = {
            "type": "host-counters",
            "host": host,
            "at": now,
            "revision": applied.revision if applied is not None else None,
            "chains": message_chains,
        }
        self._publish(message, last_hits)
        self.ticks += 1
        self.last_message = message
        return message

    def _read(self, watched: set[str]) -> dict[str, tuple[int, str, str, list[Any]]]:
        """chain key -> (family, table, chain, counters): one read per table."""
        by_table: dict[tuple[int, str], list[str]] = defaultdict(list)
        for key in sorted(watched):
            family, table, chain = wire.split_chain_key(key)
            by_table[(family, table)].append(chain)
        started = time.perf_counter()
        readings = {}
        for (family, table), chains in by_table.items():
            for chain, counters in self.reader.read_chains(chains, family, table).items():
                readings[wire.chain_key(family, table, chain)] = (family, table, chain, counters)
        self.read_s += time.perf_counter() - started
        self.reads += 1
        return readings

    def _chain_message(
        self,
        key: str,
        reading: tuple[int, str, str, list[Any]],
        compiled: CompiledHost | None,
        now: float,
        last_hits: dict[str, float],
    ) -> dict[str, Any]:
        """One chain's counters and rates since the last reading; rules that counted a packet
        go into `last_hits`."""
        family, table, chain, counters = reading
        ids = self._rule_ids(compiled, key, family, table, chain)
        previous = self.previous.get(key)
        values = [(c.packets, c.bytes) for c in counters]
        same_shape = previous is not None and len(previous[1]) == len(values)
        elapsed = max(1e-6, now - previous[0]) if previous is not None else 0.0
        rules = []
        for index, (packets, size) in enumerate(values):
            pps = bps = 0.0
            rule_id = ids[index] if index < len(ids) else None
            if same_shape:
                before_packets, before_bytes = previous[1][index]  # type: ignore[index]
                pps = max(0, packets - before_packets) / elapsed
                bps = max(0, size - before_bytes) / elapsed
                if rule_id and packets > before_packets:
                    last_hits[rule_id] = now
            rules.append(
                {
                    "position": index + 1,
                    "packets": packets,
                    "bytes": size,
                    "pps": round(pps, 3),
                    "bps": round(bps, 3),
                    "rule_id": rule_id,
                }
            )
        self.previous[key] = (now, values)
        return {"key": key, "name": chain, "family": family, "table": table, "at": now,
                "rules": rules}  # fmt: skip

    def _due(self, readings: dict[str, tuple[int, str, str, list[Any]]]) -> bool:
        """Whether this reading goes out: a counter moved (and the last message is at least
        min_gap_s old), a chain came or went, or every_s passed since the last message."""
        since = time.monotonic() - self.published_at
        if since >= self.every_s or set(readings) != set(self.previous):
            return True
        if since < self.min_gap_s:
            return False
        for key, (_family, _table, _chain, counters) in readings.items():
            before = self.previous[key][1]
            if len(before) != len(counters) or any(
                counter.packets != packets
                for counter, (packets, _bytes) in zip(counters, before, strict=True)
            ):
                return True
        return False

    def _publish(self, message: dict[str, Any], last_hits: dict[str, float]) -> None:
        host = message["host"]
        pipe = self.client.pipeline(transaction=False)
        pipe.publish(wire.counters_channel(self.prefix, host), json.dumps(message))
        readings_key = wire.readings_key(self.prefix, host)
        pipe.hset(
            readings_key, mapping={chain["key"]: json.dumps(chain) for chain in message["chains"]}
        )
        pipe.expire(readings_key, wire.READINGS_TTL_S)
        if last_hits:
            pipe.hset(wire.last_hit_key(self.prefix), mapping=last_hits)
        pipe.execute()

    def run(self) -> None:
        while not self.stopping.is_set():
            began = time.monotonic()
            cpu = time.thread_time()
            try:
                self.tick()
            except (redis.RedisError, OSError) as exc:
                log.warning("live counters: %s", exc)
            except Exception:
                log.exception("live counters failed")
            used = time.thread_time() - cpu
            self.cpu_s += used
            # Reads keep a steady rhythm (the time spent reading counts against the interval),
            # but a read that costs much CPU waits four times that: at most a fifth of a core.
            # (CPU, not wall time: on a busy machine a read waits for a core far longer than
            # it computes, and backing off for that would only delay the next packet.)
            spent = time.monotonic() - began
            interval = min(self.every_s, max(self.read_every_s, 5 * used))
            self.stopping.wait(max(0.02, interval - spent))


def start(agent: Any, redis_url: str, prefix: str) -> CounterStreamer:
    client = redis.Redis.from_url(url=redis_url, socket_timeout=5, socket_connect_timeout=2)
    streamer = CounterStreamer(agent, client, prefix)
    streamer.start()
    return streamer
