"""Prometheus metrics at /metrics (prometheus-client), for the monitoring people already run.

Read from the database at scrape time by one collector (no per-process state: any web server
answers the same). Labels are ids and fixed names only, never user text, so every label set is
bounded by what exists: rules (bounded by the rule quota), firewall rules (their quota), ports,
hosts, and fixed chain and kind names.

=========================================== =========  ==========================================
name                                        type       labels
=========================================== =========  ==========================================
sgweb_rule_hits_packets_total               counter    rule_id, security_group_id, project_id
sgweb_rule_hits_bytes_total                 counter    rule_id, security_group_id, project_id
sgweb_rule_last_hit_timestamp_seconds       gauge      rule_id, security_group_id, project_id
sgweb_port_packets_total                    counter    port_id, direction, verdict (accept|drop)
sgweb_host_chain_packets_total              counter    host, chain (FORWARD|INPUT|sg-chain|
                                                       sg-fallback)
sgweb_host_last_apply_duration_seconds      gauge      host
sgweb_host_applies_total                    counter    host (applies the history still holds)
sgweb_host_apply_failures_total             counter    host
sgweb_host_drift_repairs_total              counter    host
sgweb_host_revision_lag                     gauge      host (desired - applied revision)
sgweb_agent_heartbeat_age_seconds           gauge      host (absent: never seen)
sgweb_accounting_lost_intervals_total       counter    host (documents lost, e.g. Redis restart)
sgweb_accounting_dropped_documents_total    counter    host (overlapping: never counted twice)
sgweb_accounting_read_seconds               gauge      host (the agent's last counter read)
sgweb_accounting_chains_waiting             gauge      host (chains its last reading left to
                                                       the next: its time budget)
sgweb_accounting_document_age_seconds       gauge      host (since the last counted document)
=========================================== =========  ==========================================

Firewall rules (issue 16), their hits summed over routers and network nodes:

================================================== =========  ===================================
name                                               type       labels
================================================== =========  ===================================
sgweb_firewall_rule_hits_packets_total             counter    firewall_rule_id, project_id
sgweb_firewall_rule_hits_bytes_total               counter    firewall_rule_id, project_id
sgweb_firewall_rule_last_hit_timestamp_seconds     gauge      firewall_rule_id, project_id
sgweb_firewall_builtin_packets_total               counter    host, kind (fw-invalid |
                                                              fw-established | fw-default-drop)
sgweb_firewall_accounting_lost_intervals_total     counter    host (the routers' own stream)
sgweb_firewall_accounting_read_seconds             gauge      host (its last read of its routers)
================================================== =========  ===================================

Access: a bearer token (``SGWEB_METRICS_TOKEN``) or a client address in
``SGWEB_METRICS_ALLOWED_IPS`` (CIDRs, default loopback); anything else is 403.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sgweb.accounting.models import (
    FirewallAccounting,
    FirewallRuleUsage,
    HostAccounting,
    PortOriginUsage,
    RuleUsage,
)
from sgweb.hostsync.models import HostEvent, HostEventKind
from sgweb.networks.models import Host

RULE_LABELS = ["rule_id", "security_group_id", "project_id"]


class AccountingCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from _rule_metrics()
        yield from _firewall_metrics()
        yield from _port_metrics()
        yield from _host_metrics()


def _rule_metrics() -> Iterator[Metric]:
    packets = CounterMetricFamily(
        "sgweb_rule_hits_packets",
        "Packets a security group rule accepted, all hosts",
        labels=RULE_LABELS,
    )
    size = CounterMetricFamily(
        "sgweb_rule_hits_bytes",
        "Bytes a security group rule accepted, all hosts",
        labels=RULE_LABELS,
    )
    last = GaugeMetricFamily(
        "sgweb_rule_last_hit_timestamp_seconds",
        "When a rule last counted a packet",
        labels=RULE_LABELS,
    )
    rows = RuleUsage.objects.values_list(
        "rule_id", "rule__security_group_id", "rule__project_id", "packets", "bytes", "last_hit_at"
    )
    for rule, group, project, count, total, last_hit in rows.iterator(chunk_size=2000):
        labels = [str(rule), str(group), project.hex]
        packets.add_metric(labels, count)
        size.add_metric(labels, total)
        if last_hit is not None:
            last.add_metric(labels, last_hit.timestamp())
    yield from (packets, size, last)


FIREWALL_LABELS = ["firewall_rule_id", "project_id"]


def _firewall_metrics() -> Iterator[Metric]:
    """Firewall rules' hits summed over routers and nodes (issue 16), and each network node's
    built-in FWaaS origins."""
    packets = CounterMetricFamily(
        "sgweb_firewall_rule_hits_packets", "Packets a firewall rule matched, all routers",
        labels=FIREWALL_LABELS,
    )  # fmt: skip
    size = CounterMetricFamily(
        "sgweb_firewall_rule_hits_bytes", "Bytes a firewall rule matched, all routers",
        labels=FIREWALL_LABELS,
    )  # fmt: skip
    last = GaugeMetricFamily(
        "sgweb_firewall_rule_last_hit_timestamp_seconds", "When a firewall rule last matched",
        labels=FIREWALL_LABELS,
    )  # fmt: skip
    rows = FirewallRuleUsage.objects.values_list(
        "rule_id", "rule__project_id", "packets", "bytes", "last_hit_at"
    )
    for rule, project, count, total, last_hit in rows.iterator(chunk_size=2000):
        labels = [str(rule), project.hex]
        packets.add_metric(labels, count)
        size.add_metric(labels, total)
        if last_hit is not None:
            last.add_metric(labels, last_hit.timestamp())
    builtin = CounterMetricFamily(
        "sgweb_firewall_builtin_packets",
        "Packets of a network node's FWaaS chains' built-in rules (INVALID, established, the "
        "default drop), all routers", labels=["host", "kind"],
    )  # fmt: skip
    lost = CounterMetricFamily(
        "sgweb_firewall_accounting_lost_intervals",
        "Firewall accounting intervals lost (a Redis restart)", labels=["host"],
    )  # fmt: skip
    read = GaugeMetricFamily(
        "sgweb_firewall_accounting_read_seconds", "The node's last read of its routers' counters",
        labels=["host"],
    )  # fmt: skip
    states = FirewallAccounting.objects.values_list(
        "host__name", "builtin_totals", "lost_intervals", "last_read_ms"
    )
    for host, totals, lost_intervals, read_ms in states.order_by("host__name"):
        for kind, (count, _bytes) in sorted(totals.items()):
            builtin.add_metric([host, kind], count)
        lost.add_metric([host], lost_intervals)
        if read_ms is not None:
            read.add_metric([host], read_ms / 1000)
    yield from (packets, size, last, builtin, lost, read)


def _port_metrics() -> Iterator[Metric]:
    ports = CounterMetricFamily(
        "sgweb_port_packets", "Packets a port's chains accepted or dropped",
        labels=["port_id", "direction", "verdict"],
    )  # fmt: skip
    rows = (
        PortOriginUsage.objects.filter(verdict__in=("accept", "drop"))
        .values_list("port_id", "direction", "verdict")
        .annotate(total=Sum("packets"))
        .order_by("port_id", "direction", "verdict")
    )
    for port, direction, verdict, total in rows:
        ports.add_metric([str(port), direction, verdict], total or 0)
    yield ports


def _host_metrics() -> Iterator[Metric]:
    now = time.time()
    gauges = {
        name: GaugeMetricFamily(f"sgweb_{name}", text, labels=["host"])
        for name, text in (
            ("host_last_apply_duration_seconds", "Duration of the host's last apply"),
            ("host_revision_lag", "Desired minus applied revision"),
            ("agent_heartbeat_age_seconds", "Seconds since the agent's last heartbeat"),
            ("accounting_read_seconds", "The agent's last reading of its counters"),
            ("accounting_chains_waiting", "Chains the agent's last reading left to the next"),
            ("accounting_document_age_seconds", "Seconds since the last counted document"),
        )
    }
    counters = {
        name: CounterMetricFamily(f"sgweb_{name}", text, labels=["host"])
        for name, text in (
            ("host_applies", "Applies in the host's kept history"),
            ("host_apply_failures", "Failed applies in the host's kept history"),
            ("host_drift_repairs", "Drift repairs in the host's kept history"),
            ("accounting_lost_intervals", "Accounting intervals lost (a Redis restart)"),
            ("accounting_dropped_documents", "Overlapping documents dropped (never counted twice)"),
        )
    }
    chains = CounterMetricFamily(
        "sgweb_host_chain_packets", "Packets into the host-wide chains", labels=["host", "chain"]
    )
    events: dict[tuple[int, str], int] = {
        (host, kind): count
        for host, kind, count in HostEvent.objects.values_list("host_id", "kind")
        .annotate(count=Count("id"))
        .order_by()
    }
    accounting = {a.host_id: a for a in HostAccounting.objects.all()}
    for host in Host.objects.order_by("name"):
        label = [host.name]
        if host.last_apply_duration_ms is not None:
            gauges["host_last_apply_duration_seconds"].add_metric(
                label, host.last_apply_duration_ms / 1000
            )
        gauges["host_revision_lag"].add_metric(
            label, max(0, host.desired_revision - host.applied_revision)
        )
        if host.last_heartbeat_at is not None:
            gauges["agent_heartbeat_age_seconds"].add_metric(
                label, max(0.0, now - host.last_heartbeat_at.timestamp())
            )
        for name, kind in (("host_applies", HostEventKind.APPLY),
                           ("host_apply_failures", HostEventKind.APPLY_FAILED),
                           ("host_drift_repairs", HostEventKind.DRIFT)):  # fmt: skip
            counters[name].add_metric(label, events.get((host.pk, kind), 0))
        state = accounting.get(host.pk)
        if state is None:
            continue
        counters["accounting_lost_intervals"].add_metric(label, state.lost_intervals)
        counters["accounting_dropped_documents"].add_metric(label, state.dropped_documents)
        if state.last_read_ms is not None:
            gauges["accounting_read_seconds"].add_metric(label, state.last_read_ms / 1000)
        gauges["accounting_chains_waiting"].add_metric(label, state.last_chains_waiting)
        if state.last_at is not None:
            gauges["accounting_document_age_seconds"].add_metric(
                label, max(0.0, now - state.last_at.timestamp())
            )
        for chain, (packets, _bytes) in sorted(state.chain_totals.items()):
            chains.add_metric([host.name, chain], packets)
    yield from gauges.values()
    yield from counters.values()
    yield chains


def allowed(request: HttpRequest) -> bool:
    token = settings.SGWEB_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(cidr, strict=False)
        for cidr in settings.SGWEB_METRICS_ALLOWED_IPS
    )


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        return HttpResponse(
            "403 Forbidden: /metrics needs the SGWEB_METRICS_TOKEN bearer token or an address "
            "in SGWEB_METRICS_ALLOWED_IPS\n", status=403, content_type="text/plain",
        )  # fmt: skip
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AccountingCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
