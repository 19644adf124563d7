"""What the control plane remembers about host agents beyond the Host row itself.

`HostEvent` is the admin-visible history of a host's agent: applies, failures, drift found and
repaired, agent restarts. `PublishIntent` is the outbox: the intent to publish a host, written in
the same transaction as the change, deleted once that host's new state is stored in Redis; what a
dead process or an unreachable Redis left behind, the reconciler publishes.
"""

from __future__ import annotations

from django.db import models


class HostEventKind(models.TextChoices):
    """What a host's event says happened there."""

    APPLY = "apply", "Applied"
    APPLY_FAILED = "apply-failed", "Apply failed"
    DRIFT = "drift", "Drift found"
    AGENT_START = "agent-start", "Agent started"
    REPUBLISH = "republish", "State re-sent"


class HostEvent(models.Model):
    """One event in a host agent's history: an apply, a failure, drift, a start, a re-send."""

    host = models.ForeignKey("networks.Host", on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    kind = models.CharField(max_length=16, choices=HostEventKind.choices)
    revision = models.PositiveBigIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    message = models.TextField(blank=True, default="")
    # The agent's report as sent (counts, offending line, drifted chains, ...).
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["host", "-at"], name="hostevent_host_at")]

    def __str__(self) -> str:
        return f"{self.host_id} {self.kind} r{self.revision}"


class HostDrift(models.Model):
    """What a host's agent last said about drift: the alerts still in force (foreign rules ahead
    of our jumps, changed policies, br_netfilter missing: reported, not ours to change) and its
    last findings in words. One row per host; an agent report with no alert clears them."""

    host = models.OneToOneField(
        "networks.Host", on_delete=models.CASCADE, related_name="drift", primary_key=True
    )
    alerts = models.JSONField(default=list, blank=True)  # sentences, still in force
    words = models.JSONField(default=list, blank=True)  # the last findings, as sentences
    repairs = models.JSONField(default=list, blank=True)  # what the agent put right
    repaired = models.BooleanField(default=False)
    detected_at = models.DateTimeField(null=True, blank=True)  # of the last findings
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.host_id}: {len(self.alerts)} alerts"

    def as_dict(self) -> dict[str, object]:
        return {
            "alerts": list(self.alerts),
            "last_findings": list(self.words),
            "last_repairs": list(self.repairs),
            "repaired": self.repaired,
            "detected_at": self.detected_at.isoformat() if self.detected_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


class PublishIntent(models.Model):
    """The outbox: this host's desired state must be published (again).

    Rows are only ever inserted by a change (no row is shared by two transactions, so
    concurrent changes never wait on each other here) and deleted by whoever stored the host's
    state in Redis after reading them: the request's after-commit publisher, the control worker,
    or the reconciler.
    """

    host_name = models.CharField(max_length=255, db_index=True)
    reason = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"publish {self.host_name} ({self.reason})"
