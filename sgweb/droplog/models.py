"""Logged flows as the control plane keeps them: one row per flow key, explained once.

A row is a flow (port, direction, event, family, protocol, addresses, ports or ICMP type and
code): its first and last packet and how many the agents reported. Agents send a still-open
flow again as it grows (same key and `first_seen`, a larger count); `segment_first_seen` and
`segment_count` remember the agent's last report of the row so a repeat adds only what is new.
"""

from __future__ import annotations

from django.db import models


class DropFlow(models.Model):
    """One logged flow at one port, stored once and counted as it grows."""

    # A digest of the flow key (`sgweb.droplog.actions.flow_key`): unique, nulls and all.
    key = models.CharField(max_length=40, unique=True)
    port = models.ForeignKey("networks.Port", on_delete=models.CASCADE, related_name="drop_flows")
    # Copied from the port when the flow is first stored: every query filters by it.
    project = models.ForeignKey(
        "tenancy.Project", on_delete=models.CASCADE, related_name="drop_flows"
    )
    host = models.CharField(max_length=255, db_index=True)
    direction = models.CharField(max_length=7)  # "ingress" | "egress" (the VM's view)
    event = models.CharField(max_length=6)  # "DROP" | "ACCEPT"
    ethertype = models.CharField(max_length=4)
    protocol = models.PositiveSmallIntegerField()
    src = models.CharField(max_length=45)
    dst = models.CharField(max_length=45)
    src_port = models.PositiveIntegerField(null=True, blank=True)
    dst_port = models.PositiveIntegerField(null=True, blank=True)
    icmp_type = models.PositiveSmallIntegerField(null=True, blank=True)
    icmp_code = models.PositiveSmallIntegerField(null=True, blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)
    count = models.PositiveBigIntegerField(default=0)
    segment_first_seen = models.FloatField(default=0.0)
    segment_count = models.PositiveBigIntegerField(default=0)
    decided_by = models.CharField(max_length=80, blank=True, default="")
    ct_state = models.CharField(max_length=16, blank=True, default="")
    # The tracer's account of the flow (sgweb.droplog.explain), in words and in parts.
    explanation = models.TextField(blank=True, default="")
    reason = models.CharField(max_length=40, blank=True, default="")
    verdict = models.CharField(max_length=6, blank=True, default="")
    rule_id = models.CharField(max_length=36, blank=True, default="")
    nearest_rule_id = models.CharField(max_length=36, blank=True, default="")
    differs = models.JSONField(default=list, blank=True)
    group_ids = models.JSONField(default=list, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "last_seen"], name="dropflow_project_recent")]

    def __str__(self) -> str:
        return f"{self.event} {self.direction} {self.src} -> {self.dst} x{self.count}"


class HostDropLog(models.Model):
    """What one host's agent told us about its drop log: its batches and what it shed."""

    host = models.CharField(max_length=255, unique=True)
    run = models.FloatField(null=True, blank=True)
    sequence = models.BigIntegerField(default=0)
    batches = models.PositiveBigIntegerField(default=0)
    stale_batches = models.PositiveBigIntegerField(default=0)  # repeats or older than seen
    shed = models.PositiveBigIntegerField(default=0)  # log packets the agent could not keep
    unknown_ports = models.PositiveBigIntegerField(default=0)  # flows of ports we do not know
    last_batch_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.host}: {self.batches} batches, {self.shed} shed"
