"""A kept trace: who asked what, the static verdict, the kernel's proof and every message."""

from __future__ import annotations

import uuid
from typing import cast

from django.conf import settings
from django.db import models

from sgweb.wire import traces as protocol


class TraceStatus(models.TextChoices):
    """Where a trace stands (the values are the wire's, `sgweb.wire.traces`)."""

    PENDING = protocol.STATUS_PENDING, "pending"
    RUNNING = protocol.STATUS_RUNNING, "running"
    DONE = protocol.STATUS_DONE, "done"
    FAILED = protocol.STATUS_FAILED, "failed"
    TIMEOUT = protocol.STATUS_TIMEOUT, "timeout"
    OBSERVED = protocol.STATUS_OBSERVED, "observed"


class Trace(models.Model):
    """A kept packet trace: who asked what, the static verdict and the kernel's proof."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="traces",
    )  # fmt: skip
    # The project whose members may open the trace (the source port's, else the destination's).
    project = models.ForeignKey(
        "tenancy.Project", null=True, blank=True, on_delete=models.SET_NULL, related_name="traces"
    )
    # What was asked, as typed (a port id/name or an address) and as resolved.
    source = models.CharField(max_length=255)
    destination = models.CharField(max_length=255)
    source_port = models.ForeignKey(
        "networks.Port", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    destination_port = models.ForeignKey(
        "networks.Port", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source_address = models.GenericIPAddressField()
    destination_address = models.GenericIPAddressField()
    family = models.PositiveSmallIntegerField(default=4)
    protocol = models.CharField(max_length=16)
    port = models.PositiveIntegerField(null=True, blank=True)
    icmp_type = models.PositiveSmallIntegerField(null=True, blank=True)
    icmp_code = models.PositiveSmallIntegerField(null=True, blank=True)
    # Which host's agent proves it, and how ("probe" in the lab, else "observe").
    host = models.CharField(max_length=255, blank=True, default="")
    mode = models.CharField(max_length=16, blank=True, default="")
    status = models.CharField(
        max_length=16, choices=TraceStatus.choices, default=TraceStatus.PENDING
    )
    static_result = models.JSONField(default=dict, blank=True)  # the trace-static message
    kernel_result = models.JSONField(default=dict, blank=True)  # the trace-result message
    events = models.JSONField(default=list, blank=True)  # every message, in order

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        what = self.protocol + (f"/{self.port}" if self.port else "")
        return f"{what} {self.source_address} -> {self.destination_address}"

    @property
    def static_verdict(self) -> str:
        return str(self.static_result.get("verdict", ""))

    @property
    def kernel_verdict(self) -> str | None:
        return cast(str | None, self.kernel_result.get("kernel_verdict"))

    @property
    def agrees(self) -> bool | None:
        return cast(bool | None, self.kernel_result.get("agrees"))

    @property
    def finished(self) -> bool:
        return self.status in protocol.FINAL_STATUSES
