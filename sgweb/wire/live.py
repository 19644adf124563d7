"""What browsers' watchers and host agents agree on in Redis (pure: no Django, no Channels).

Keys (``P`` is the hostsync key prefix, `sgweb.wire.sync.key_prefix()`):

* ``P:live:watchers:HOST``        set of watcher ids watching something on HOST
* ``P:live:watch:HOST:ID``        JSON list of chain keys that watcher wants, with a TTL the
                                  watcher refreshes while connected (a crashed web process's
                                  watches end by themselves)
* ``P:live:counters:HOST``        pub/sub channel: one `host-counters` message per host per tick
* ``P:live:readings:HOST``        hash chain key -> the latest reading of that chain (JSON), for
                                  first paints and the per-rule hits of a group
* ``P:live:last_hit``             hash rule id -> Unix time the agent last saw its count rise

A chain key is ``"<family>:<table>:<chain>"``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from sgweb.wire.sync import host_token

WATCH_TTL_S = 10  # a watcher refreshes every WATCH_REFRESH_S; three misses and it is gone
WATCH_REFRESH_S = 3.0
READINGS_TTL_S = 7 * 24 * 3600
TICK_S = 1.0  # a watched host's counters reach the browser at least this often
READ_S = 0.25  # the agent reads watched chains this often, to show a packet without delay
MIN_PUBLISH_GAP_S = 0.5  # and publishes a moved counter at once, but not more often than this


def chain_key(family: int, table: str, chain: str) -> str:
    return f"{family}:{table}:{chain}"


def split_chain_key(key: str) -> tuple[int, str, str]:
    family, table, chain = key.split(":", 2)
    return int(family), table, chain


def watchers_key(prefix: str, host: str) -> str:
    return f"{prefix}:live:watchers:{host_token(host)}"


def watch_key(prefix: str, host: str, watcher: str) -> str:
    return f"{prefix}:live:watch:{host_token(host)}:{watcher}"


def counters_channel(prefix: str, host: str) -> str:
    return f"{prefix}:live:counters:{host_token(host)}"


def readings_key(prefix: str, host: str) -> str:
    return f"{prefix}:live:readings:{host_token(host)}"


def last_hit_key(prefix: str) -> str:
    return f"{prefix}:live:last_hit"


def register_watch(client: Any, prefix: str, host: str, watcher: str, chains: Iterable[str]) -> Any:
    """Add or refresh one watcher's chains (also the periodic refresh)."""
    pipe = client.pipeline()
    pipe.set(watch_key(prefix, host, watcher), json.dumps(sorted(set(chains))), ex=WATCH_TTL_S)
    pipe.sadd(watchers_key(prefix, host), watcher)
    pipe.expire(watchers_key(prefix, host), WATCH_TTL_S * 6)
    return pipe.execute()


def release_watch(client: Any, prefix: str, host: str, watcher: str) -> Any:
    pipe = client.pipeline()
    pipe.delete(watch_key(prefix, host, watcher))
    pipe.srem(watchers_key(prefix, host), watcher)
    return pipe.execute()


def watched_chains(client: Any, prefix: str, host: str) -> set[str]:
    """The union of every live watcher's chains; forgets watchers whose key expired."""
    members = [
        m.decode() if isinstance(m, bytes) else m
        for m in client.smembers(watchers_key(prefix, host))
    ]
    if not members:
        return set()
    values = client.mget([watch_key(prefix, host, m) for m in members])
    chains: set[str] = set()
    gone = []
    for member, value in zip(members, values, strict=True):
        if value is None:
            gone.append(member)
            continue
        chains.update(json.loads(value))
    if gone:
        client.srem(watchers_key(prefix, host), *gone)
    return chains


def now() -> float:
    return time.time()
