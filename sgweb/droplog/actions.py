"""The writers of the drop log: add one agent batch of flows, prune what retention lets go.

`record` runs in the control worker for every `sgweb.wire.packetlog` batch. In one
transaction it counts the batch (and what the agent shed) on the host's `HostDropLog`, merges
each flow into its stored row (one per flow key), explains the flows it has not seen before
with the tracer, and says after commit which rows are new or grew, per project, to the live
pages (`EventKind.DROP_FLOWS`, scoped to the flow's project).

Merging: an agent reports a still-open flow again as it grows (same `first_seen`, a larger
count) and a flow that came back after its window as a new one (a later `first_seen`). A row
keeps the agent's last report (`segment_first_seen`, `segment_count`): a repeat adds what is
new (a batch delivered twice adds nothing), a new segment adds its whole count.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from sgweb import dispatch
from sgweb.droplog.explain import ExplanationCache, FlowExplanation
from sgweb.droplog.models import DropFlow, HostDropLog
from sgweb.droplog.representation import flow_to_dict
from sgweb.firewall.trace.flow import HostTarget
from sgweb.hostsync.compiled import host_target
from sgweb.networks.models import Host, Port
from sgweb.wire import packetlog as wire

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 60.0

explanations = ExplanationCache()
_pruned_at = 0.0
_prune_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Recorded:
    flows: int  # rows new or grown
    new: int  # rows first seen (and explained) now
    unknown_ports: int
    stale: bool  # a batch already counted (or older than one): its shed count is not added


def flow_key(flow: wire.Flow) -> str:
    parts = "|".join("" if part is None else str(part) for part in flow.key())
    return hashlib.sha1(parts.encode()).hexdigest()


def _moment(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, tz=UTC)


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _target(host: str) -> HostTarget | None:
    if not Host.objects.filter(name=host).exists():
        return None
    try:
        return host_target(host)
    except Exception:  # the flows are kept unexplained rather than lost with the batch
        log.exception("drop log: could not compile host %s to explain its flows", host)
        return None


def _explain(target: HostTarget | None, host: str, flow: wire.Flow) -> FlowExplanation:
    if target is None:
        return FlowExplanation(f"host {host}'s rules could not be read to explain this flow")
    try:
        return explanations.explain(target, flow)
    except Exception as exc:  # a tracer bug must not lose what the agent saw
        log.exception("drop log: could not explain a flow of port %s", flow.port_id)
        return FlowExplanation(f"could not explain the flow: {exc}")


def _count_batch(batch: wire.FlowBatch) -> tuple[HostDropLog, bool]:
    state, _ = HostDropLog.objects.select_for_update().get_or_create(host=batch.host)
    last = (state.run, state.sequence) if state.run is not None else None
    stale = last is not None and (batch.run, batch.sequence) <= last
    state.batches += 1
    if stale:
        state.stale_batches += 1
    else:
        state.run, state.sequence = batch.run, batch.sequence
        state.shed += batch.shed
        if batch.shed:
            log.warning("drop log: host %s shed %d log packets", batch.host, batch.shed)
    state.last_batch_at = timezone.now()
    return state, stale


def _merge(row: DropFlow, flow: wire.Flow) -> bool:
    """Add the agent's report to the row; True if the row changed."""
    if flow.first_seen == row.segment_first_seen:
        grown = max(0, flow.count - row.segment_count)
        row.segment_count = max(row.segment_count, flow.count)
    else:
        grown = flow.count
        if flow.first_seen > row.segment_first_seen:
            row.segment_first_seen, row.segment_count = flow.first_seen, flow.count
    last = _moment(flow.last_seen)
    first = _moment(flow.first_seen)
    changed = grown > 0 or last > row.last_seen or first < row.first_seen
    row.count += grown
    row.last_seen = max(row.last_seen, last)
    row.first_seen = min(row.first_seen, first)
    if flow.ct_state and not row.ct_state:
        row.ct_state = flow.ct_state
    return changed


def _new_row(flow: wire.Flow, key: str, port: Port, host: str) -> DropFlow:
    return DropFlow(
        key=key,
        port=port,
        project_id=port.project_id,
        host=host,
        direction=flow.direction,
        event=flow.event,
        ethertype=flow.ethertype,
        protocol=flow.protocol,
        src=flow.src,
        dst=flow.dst,
        src_port=flow.src_port,
        dst_port=flow.dst_port,
        icmp_type=flow.icmp_type,
        icmp_code=flow.icmp_code,
        first_seen=_moment(flow.first_seen),
        last_seen=_moment(flow.last_seen),
        count=flow.count,
        segment_first_seen=flow.first_seen,
        segment_count=flow.count,
        decided_by=(flow.decided_by or "")[:80],
        ct_state=(flow.ct_state or "")[:16],
    )


UPDATED = ["count", "first_seen", "last_seen", "segment_first_seen", "segment_count", "ct_state"]


def record(data: dict[str, Any]) -> Recorded:
    """Store one agent batch (see the module docstring); a malformed one changes nothing."""
    batch = wire.parse_flow_batch(data)
    keys = {flow_key(flow): flow for flow in batch.flows}
    port_ids = {pid for flow in batch.flows if (pid := _uuid(flow.port_id)) is not None}
    with transaction.atomic():
        state, stale = _count_batch(batch)
        ports = {
            str(p.pk): p for p in Port.objects.filter(pk__in=port_ids).only("id", "project", "name")
        }
        rows = {
            row.key: row
            for row in DropFlow.objects.filter(key__in=list(keys)).select_related("port")
        }
        created: dict[str, DropFlow] = {}
        changed: dict[str, DropFlow] = {}
        unknown = 0
        target: HostTarget | None = None
        targeted = False
        for flow in batch.flows:
            key = flow_key(flow)
            row = rows.get(key) or created.get(key)
            if row is not None:
                if _merge(row, flow) and key not in created:
                    changed[key] = row
                continue
            port = ports.get(str(_uuid(flow.port_id)))
            if port is None:
                unknown += 1
                continue
            if not targeted:
                target, targeted = _target(batch.host), True
            row = _new_row(flow, key, port, batch.host)
            for name, value in _explain(target, batch.host, flow).fields().items():
                setattr(row, name, value)
            created[key] = row
        state.unknown_ports += unknown
        state.save()
        DropFlow.objects.bulk_create(list(created.values()))
        if changed:
            # One upsert on the unique key, not bulk_update's CASE per column and row (4 ms
            # per flow at 500 flows a batch).
            DropFlow.objects.bulk_create(
                list(changed.values()),
                update_conflicts=True,
                unique_fields=["key"],
                update_fields=UPDATED,
            )
        _announce([*created.values(), *changed.values()], ports)
    prune_now_and_then()
    return Recorded(len(created) + len(changed), len(created), unknown, stale)


def _announce(rows: list[DropFlow], ports: dict[str, Port]) -> None:
    """After commit: each project's new or grown flows to its live pages."""
    by_project: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_project[row.project_id].append(flow_to_dict(row))
    for project_id, flows in by_project.items():
        payload = {"type": "drop-flows", "project_id": project_id.hex, "flows": flows}
        dispatch.send_event_on_commit(
            dispatch.EventKind.DROP_FLOWS, payload, scope=dispatch.project_scope(project_id)
        )


def prune(now: float | None = None) -> int:
    """Delete flows older than the retention, then the oldest beyond the row limit."""
    moment = _moment(time.time() if now is None else now)
    cutoff = moment - timedelta(seconds=settings.SGWEB_PACKET_LOG_RETENTION)
    deleted, _ = DropFlow.objects.filter(last_seen__lt=cutoff).delete()
    limit = settings.SGWEB_PACKET_LOG_MAX_FLOWS
    newest = DropFlow.objects.order_by("-last_seen", "-id").values_list("id", "last_seen")
    boundary = list(newest[limit : limit + 1])
    if boundary:
        boundary_id, boundary_seen = boundary[0]
        older = Q(last_seen__lt=boundary_seen) | Q(last_seen=boundary_seen, id__lte=boundary_id)
        more, _ = DropFlow.objects.filter(older).delete()
        deleted += more
    return deleted


def prune_now_and_then() -> None:
    global _pruned_at
    now = time.monotonic()
    with _prune_lock:
        if now - _pruned_at < PRUNE_EVERY_S:
            return
        _pruned_at = now
    pruned = prune()
    if pruned:
        log.info("drop log: pruned %d flows", pruned)
