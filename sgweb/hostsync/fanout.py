"""Publishing many hosts at once: shared pieces computed and stored once, Redis pipelined.

What one change to a group used on every host costs here: one revision per host (one pipeline),
the group and its remote groups' members read and encoded once (`SharedParts`, `manifest`),
each shared piece stored once (or only its expiry refreshed when Redis has it), one small
manifest per host (one pipeline of conditional stores), and one PUBLISH per host on its nudge
channel (one pipeline, `sgweb.wire.sync`). Hosts whose own ports the change did not touch
(`reuse`) are not read from the database at all: their manifest keeps the ports piece and the
groups it used, read back from the manifest stored last; only the group and member references
change, and the kept ports piece's expiry is refreshed once a day at most (``refreshed_at``,
`sgweb.wire.sync`). What a thousand-host change sends Redis, per host: its revision (~115
bytes), its manifest's store (~590), its nudge (~60) and two reads (~75): 0.84 MB in all;
`FANOUT_BYTES=1 python -m bench.fanout` tallies it by command and key kind.

Why reusing the stored ports piece is safe although another publisher may be storing newer
ports at the same time: a change to a host's ports publishes that host in full (it is in the
change's `hosts`), and a full publish that finds a newer revision stored with other ports than
its own (`OLDER`, a reusing publisher got ahead of it with the ports before) publishes again
under a new revision; anything else is caught by the reconciler, which compares the digest of
the state built from the database with the stored one.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models.functions import Greatest

from sgweb.firewall import manifest
from sgweb.firewall.model import HostState, SecurityGroup
from sgweb.hostsync.channel import SyncChannel
from sgweb.hostsync.desired_state import SharedParts, host_scalars, host_state
from sgweb.networks.choices import HostStatus
from sgweb.networks.models import Host, Port
from sgweb.wire import sync as protocol

STORED = 1
OLDER = 0
UNCHANGED = -1
REPUBLISH_ATTEMPTS = 3


@dataclass
class Built:
    host: str
    revision: int
    manifest: manifest.Manifest
    reused: bool
    build_ms: float
    # When every piece this manifest names was last made sure of (stored or its expiry
    # refreshed); a reused ports piece refreshed within PIECES_REFRESH_S is left alone.
    refreshed_at: int = 0
    ports_fresh: bool = False


@dataclass
class Outcome:
    host: str
    revision: int
    digest: str
    outcome: int
    build_ms: float
    error: Exception | None = None


@dataclass
class _Pieces:
    """Each shared piece encoded once per publish, whatever the number of hosts naming it."""

    groups: dict[str, tuple[SecurityGroup, manifest.Piece]] = field(default_factory=dict)
    members: dict[str, tuple[tuple[str, ...], manifest.Piece]] = field(default_factory=dict)
    settings: dict[str, manifest.Piece] = field(default_factory=dict)

    def group(self, group: SecurityGroup) -> manifest.Piece:
        known = self.groups.get(group.id)
        if known is None or known[0] is not group:  # another object: a hand-built state
            known = (group, manifest.group_piece(group))
            self.groups[group.id] = known
        return known[1]

    def member(self, gid: str, addresses: tuple[str, ...]) -> manifest.Piece:
        known = self.members.get(gid)
        if known is None or known[0] is not addresses:
            known = (addresses, manifest.members_piece(gid, addresses))
            self.members[gid] = known
        return known[1]

    def setting(self, state: HostState) -> manifest.Piece:
        text = manifest.settings_text(state)  # the same for every host of a deployment
        known = self.settings.get(text)
        if known is None:
            known = self.settings[text] = manifest.Piece(
                manifest.SETTINGS, manifest.piece_id(text), text
            )
        return known


def _floors(names: list[str], via: SyncChannel) -> dict[str, int]:
    """Per host, the lowest revision the next may be (see `publish._revision_floor`)."""
    floors = {name: 0 for name in names}
    recorded = Host.objects.filter(name__in=names).values_list(
        "name", Greatest("desired_revision", "applied_revision")
    )
    for name, value in recorded:
        floors[name] = int(value or 0)
    beats = via.redis.mget([via.keys(name).heartbeat for name in names])
    for name, beat in zip(names, beats, strict=True):
        if beat:
            with contextlib.suppress(ValueError, TypeError, AttributeError):  # odd: no floor
                floors[name] = max(floors[name], int(json.loads(beat).get("applied_revision") or 0))
    return floors


def _revisions(names: list[str], via: SyncChannel) -> dict[str, int]:
    floors = _floors(names, via)
    script = via.redis.register_script(protocol.NEXT_REVISION_LUA)  # EVALSHA: no script text
    pipe = via.redis.pipeline(transaction=False)
    for name in names:
        script(keys=[via.keys(name).revision], args=[floors[name]], client=pipe)
    return {name: int(rev) for name, rev in zip(names, pipe.execute(), strict=True)}


def _mark_ports(revisions: dict[str, int]) -> None:
    """Ports changed since the last publish are carried from this revision on (their status
    turns ACTIVE when the agent reports it); see `publish.publish_host`."""
    hosts = set(
        Port.objects.filter(host__name__in=list(revisions), host_revision__isnull=True)
        .values_list("host__name", flat=True)
        .distinct()
    )
    for name in sorted(hosts):
        Port.objects.filter(host__name=name, host_revision__isnull=True).update(
            host_revision=revisions[name]
        )


def _stored_manifests(names: list[str], via: SyncChannel) -> dict[str, protocol.Desired]:
    """The documents stored for these hosts that hold a manifest of the current format (hosts
    with a whole state, an older manifest or none are left out: they are built in full)."""
    if not names:
        return {}
    found = {}
    for name, raw in zip(names, via.redis.mget([via.keys(n).desired for n in names]), strict=True):
        if raw is None:
            continue
        try:
            desired = protocol.parse_desired(raw)
        except (ValueError, KeyError, TypeError):
            continue
        if manifest.is_manifest(desired.state, current=True):
            found[name] = desired
    return found


def _reused_manifest(
    name: str, stored: dict[str, Any], shared: SharedParts, pieces: _Pieces
) -> manifest.Manifest:
    used = [str(gid) for gid in stored["uses"]]
    present, remote = shared.closure(used)
    groups = tuple((gid, pieces.group(shared.groups[gid])) for gid in present)
    members = tuple((gid, pieces.member(gid, shared.members.get(gid, ()))) for gid in remote)
    settings = pieces.setting(HostState(**host_scalars(name)))  # type: ignore[arg-type]
    text = manifest.manifest_text(
        name,
        settings.hash,
        str(stored["ports"]),
        used,
        (p.hash for _, p in groups),
        (p.hash for _, p in members),
    )
    # The ports piece is in Redis already (checked before the manifest is stored, or lately).
    ports = manifest.Piece(manifest.PORTS, str(stored["ports"]), "")
    return manifest.Manifest(text, manifest.text_digest(text), ports, settings, groups, members)


def _build(
    names: list[str],
    revisions: dict[str, int],
    stored: dict[str, protocol.Desired],
    builder: Callable[[str], HostState] | None,
) -> tuple[list[Built], dict[str, Exception]]:
    """Each host's manifest: from `stored` (its manifest as stored last: ports kept) or in full."""
    shared = SharedParts()
    pieces = _Pieces()
    shared.preload(str(gid) for d in stored.values() for gid in d.state.get("uses", ()))
    now = int(time.time())
    built: list[Built] = []
    failed: dict[str, Exception] = {}
    for name in names:
        started = time.perf_counter()
        refreshed_at, fresh = now, False
        try:
            if name in stored:
                m = _reused_manifest(name, stored[name].state, shared, pieces)
                fresh = 0 <= now - stored[name].refreshed_at < protocol.PIECES_REFRESH_S
                refreshed_at = stored[name].refreshed_at if fresh else now
            else:
                state = builder(name) if builder else host_state(name, shared=shared)
                m = manifest.split(
                    state,
                    group_cache=pieces.group,
                    members_cache=pieces.member,
                    settings_cache=pieces.setting,
                )
        except Exception as exc:  # this host's data alone: the others are published
            failed[name] = exc
            continue
        ms = (time.perf_counter() - started) * 1000
        built.append(Built(name, revisions[name], m, name in stored, ms, refreshed_at, fresh))
    return built, failed


def _store_pieces(built: list[Built], via: SyncChannel) -> set[str]:
    """Store every piece once (or refresh its expiry); the hosts whose reused ports piece is
    gone from Redis are returned, to be built in full."""
    unique: dict[str, manifest.Piece] = {}
    for item in built:
        for p in item.manifest.pieces:
            if item.ports_fresh and p is item.manifest.ports:
                continue  # refreshed lately (see `Built`): no EXPIRE per host and change
            key = protocol.shared_key(via.prefix, p.kind, p.hash)
            if p.text or key not in unique:
                unique[key] = p
    keys = sorted(unique)
    # EXPIRE both refreshes a piece's life and says whether Redis has it (0: it has not).
    pipe = via.redis.pipeline(transaction=False)
    for key in keys:
        pipe.expire(key, protocol.SHARED_TTL_S)
    present = dict(zip(keys, pipe.execute(), strict=True))
    pipe = via.redis.pipeline(transaction=False)
    lost: set[str] = set()
    for key in keys:
        if present[key]:
            continue
        if unique[key].text:
            pipe.set(key, unique[key].text, ex=protocol.SHARED_TTL_S)
        else:
            lost.add(key)
    pipe.execute()
    if not lost:
        return set()
    return {
        item.host
        for item in built
        if protocol.shared_key(via.prefix, manifest.PORTS, item.manifest.ports.hash) in lost
    }


def _store_manifests(built: list[Built], via: SyncChannel, force: bool) -> list[int]:
    script = via.redis.register_script(protocol.STORE_MANIFEST_LUA)
    pipe = via.redis.pipeline(transaction=False)
    now = time.time()
    for item in built:
        keys = via.keys(item.host)
        m = item.manifest
        args = protocol.store_manifest_args(
            item.revision, m.digest, m.text, now, item.refreshed_at, force
        )
        script(keys=[keys.desired, keys.desired_revision, keys.desired_digest], args=args,
               client=pipe)  # fmt: skip
    return [int(value) for value in pipe.execute()]


def _update_hosts(told: dict[str, tuple[int, str]]) -> None:
    """Every host's desired revision and digest, and SYNCING where its agent is behind: two
    statements run for all hosts at once (a per-host UPDATE through the ORM costs more than
    the rest of a thousand-host publish)."""
    table = connection.ops.quote_name(Host._meta.db_table)
    rows = [(revision, digest, name, revision) for name, (revision, digest) in sorted(told.items())]
    behind = [
        (HostStatus.SYNCING.value, name, revision, HostStatus.FAILED.value)
        for name, (revision, _) in sorted(told.items())
    ]
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET desired_revision = %s, desired_digest = %s"
            " WHERE name = %s AND desired_revision < %s",
            rows,
        )
        cursor.executemany(
            f"UPDATE {table} SET status = %s WHERE name = %s AND applied_revision < %s"
            " AND status != %s",
            behind,
        )


def _nudge(told: dict[str, tuple[int, str]], via: SyncChannel) -> int:
    """Tell each host's agent its revision is stored: one PUBLISH per host on its own channel,
    all in one pipeline (about 60 bytes a host; a Celery task was about 1 KB). A channel
    nobody listens on costs nothing, so no liveness is read first. Redis errors propagate
    (the caller publishes one host at a time then). The number of agents that heard it."""
    if not told:
        return 0
    pipe = via.redis.pipeline(transaction=False)
    for name in sorted(told):
        pipe.publish(via.keys(name).nudge, protocol.nudge_message(told[name][0]))
    return sum(int(heard) for heard in pipe.execute())


def publish_many(
    names: Iterable[str],
    reason: str,
    *,
    via: SyncChannel,
    reuse: Iterable[str] = (),
    force: bool = False,
    builder: Callable[[str], HostState] | None = None,
) -> list[Outcome]:
    """Publish every named host; Redis or broker errors propagate (the caller falls back to
    one host at a time), a host whose state cannot be built comes back with its error."""
    names = sorted(set(names))
    reuse_set = set(reuse)
    outcomes: dict[str, Outcome] = {}
    for _attempt in range(REPUBLISH_ATTEMPTS):
        revisions = _revisions(names, via)
        kept = _stored_manifests(sorted(reuse_set & set(names)), via) if builder is None else {}
        # Only hosts whose ports are read now carry their changed ports from this revision.
        _mark_ports({name: rev for name, rev in revisions.items() if name not in kept})
        built, failed = _build(names, revisions, kept, builder)
        rebuild = _store_pieces(built, via)
        if rebuild:  # a kept ports piece expired: these hosts are read in full
            _mark_ports({name: revisions[name] for name in rebuild})
            again, more_failed = _build(sorted(rebuild), revisions, {}, builder)
            failed.update(more_failed)
            built = [b for b in built if b.host not in rebuild] + again
            _store_pieces(again, via)
        for name, exc in failed.items():
            outcomes[name] = Outcome(name, 0, "", OLDER, 0.0, exc)
        results = _store_manifests(built, via, force)
        retry = _lost_ports(built, results, via)
        told = _told(built, results, via, retry)
        _update_hosts(told)
        _nudge({n: t for n, t in told.items() if n not in retry}, via)
        for item, result in zip(built, results, strict=True):
            revision, digest = told[item.host]
            outcomes[item.host] = Outcome(item.host, revision, digest, result, item.build_ms)
        if not retry:
            break
        names, reuse_set = sorted(retry), set()
    return [outcomes[name] for name in sorted(outcomes)]


def _told(
    built: list[Built], results: list[int], via: SyncChannel, retry: set[str]
) -> dict[str, tuple[int, str]]:
    """Per host, the revision and digest stored now: its own, or a newer one already stored.
    The ports marked with a revision that was not stored move to the one stored (it carries
    them), or, for the hosts published again (`retry`), are left for that publish to mark."""
    told = {}
    others = [item for item, result in zip(built, results, strict=True) if result != STORED]
    values = via.redis.mget(
        [k for item in others for k in (via.keys(item.host).desired_revision,
                                          via.keys(item.host).desired_digest)]
    ) if others else []  # fmt: skip
    stored = {item.host: (values[2 * i], values[2 * i + 1]) for i, item in enumerate(others)}
    for item, result in zip(built, results, strict=True):
        if result == STORED:
            told[item.host] = (item.revision, item.manifest.digest)
            continue
        revision, digest = stored[item.host]
        told[item.host] = (
            int(revision or item.revision),
            digest.decode() if digest else item.manifest.digest,
        )
        carried = None if item.host in retry else told[item.host][0]
        Port.objects.filter(host__name=item.host, host_revision=item.revision).update(
            host_revision=carried
        )
    return told


def _lost_ports(built: list[Built], results: list[int], via: SyncChannel) -> set[str]:
    """Hosts built in full that lost to a newer revision stored with other ports: a reusing
    publisher got ahead with the ports it read before this change (see the module doc)."""
    older = [
        item
        for item, result in zip(built, results, strict=True)
        if result == OLDER and not item.reused
    ]
    stored = _stored_manifests([item.host for item in older], via)
    return {
        item.host
        for item in older
        if item.host in stored and stored[item.host].state["ports"] != item.manifest.ports.hash
    }
