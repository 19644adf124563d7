"""What the hosts' counters add up to (issue 12): totals, first and last hits, and time series.

Every agent sends per-origin deltas every interval (`sgweb.wire.accounting`); `actions.record`
adds them here. Series rows are one per (thing, step, bucket), where `bucket` is the Unix time
the bucket starts at and `step` its width in seconds; every document is added to every step at
once (10 s, 1 min, 1 h by default: `settings.SGWEB_ACCOUNTING_RETENTION`), so roll-ups need no
job, and pruning keeps each step for its own retention. Rows exist only for buckets with traffic.
"""

from __future__ import annotations

from django.db import models


class RuleUsage(models.Model):
    """A security group rule's hits summed over ports and hosts since it was created."""

    rule = models.OneToOneField(
        "security.SecurityGroupRule", on_delete=models.CASCADE, primary_key=True,
        related_name="usage",
    )  # fmt: skip
    packets = models.PositiveBigIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)
    first_hit_at = models.DateTimeField(null=True, blank=True)
    last_hit_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.rule_id}: {self.packets} packets"


class RuleSample(models.Model):
    """One bucket of a rule's hits (packets, bytes), summed over ports and hosts."""

    rule = models.ForeignKey(
        "security.SecurityGroupRule", on_delete=models.CASCADE, related_name="samples",
        db_constraint=False,
    )  # fmt: skip
    step = models.PositiveIntegerField()
    bucket = models.BigIntegerField()  # Unix seconds, a multiple of step
    packets = models.PositiveBigIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rule", "step", "bucket"], name="rulesample_key")
        ]
        indexes = [models.Index(fields=["bucket", "step"], name="rulesample_age")]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.step}s@{self.bucket}"


class PortSample(models.Model):
    """One bucket of a port's accepted and dropped packets in one direction."""

    port = models.ForeignKey(
        "networks.Port", on_delete=models.CASCADE, related_name="samples", db_constraint=False
    )
    direction = models.CharField(max_length=7)  # "ingress" | "egress" (the VM's view)
    step = models.PositiveIntegerField()
    bucket = models.BigIntegerField()
    accepted = models.PositiveBigIntegerField(default=0)
    dropped = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["port", "direction", "step", "bucket"], name="portsample_key"
            )
        ]
        indexes = [models.Index(fields=["bucket", "step"], name="portsample_age")]

    def __str__(self) -> str:
        return f"{self.port_id} {self.direction} {self.step}s@{self.bucket}"


class PortOriginUsage(models.Model):
    """Totals of one origin of a port's chains (a rule, anti-spoofing, DHCP, INVALID, ...)."""

    port = models.ForeignKey("networks.Port", on_delete=models.CASCADE, related_name="usage")
    direction = models.CharField(max_length=7, blank=True, default="")
    kind = models.CharField(max_length=32)
    rule_id = models.CharField(max_length=64, blank=True, default="")
    verdict = models.CharField(max_length=8)
    packets = models.PositiveBigIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)
    last_hit_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["port", "direction", "kind", "rule_id", "verdict"], name="portorigin_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.port_id} {self.direction} {self.kind} {self.rule_id}"


class HostSample(models.Model):
    """One bucket of a host-wide chain's packets (FORWARD, INPUT, sg-chain, sg-fallback)."""

    host = models.ForeignKey(
        "networks.Host", on_delete=models.CASCADE, related_name="samples", db_constraint=False
    )
    chain = models.CharField(max_length=16)
    step = models.PositiveIntegerField()
    bucket = models.BigIntegerField()
    packets = models.PositiveBigIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["host", "chain", "step", "bucket"], name="hostsample_key"
            )
        ]
        indexes = [models.Index(fields=["bucket", "step"], name="hostsample_age")]

    def __str__(self) -> str:
        return f"{self.host_id} {self.chain} {self.step}s@{self.bucket}"


class HostAccounting(models.Model):
    """Where a host's accounting stands: the last reading counted, totals, what was lost."""

    host = models.OneToOneField(
        "networks.Host", on_delete=models.CASCADE, primary_key=True, related_name="accounting"
    )
    run = models.FloatField(null=True, blank=True)  # the agent run of the last reading counted
    seq = models.PositiveBigIntegerField(default=0)
    last_at = models.DateTimeField(null=True, blank=True)
    documents = models.PositiveBigIntegerField(default=0)
    # Documents lost in between (a Redis restart dropped the queue), and documents dropped
    # because they overlapped what was counted (never counted twice).
    lost_intervals = models.PositiveBigIntegerField(default=0)
    dropped_documents = models.PositiveBigIntegerField(default=0)
    last_loss_at = models.DateTimeField(null=True, blank=True)
    last_read_ms = models.FloatField(null=True, blank=True)
    # Chains the agent's last reading had no time for (its budget): read first by the next
    last_chains_waiting = models.PositiveIntegerField(default=0)
    # host chain name -> [packets, bytes] since accounting began on this host
    chain_totals = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.host_id} r{self.run}#{self.seq}"


class FirewallRuleUsage(models.Model):
    """A firewall rule's hits summed over the routers and network nodes that hold it (issue 16),
    kept like `RuleUsage`."""

    rule = models.OneToOneField(
        "fwaas.FirewallRule", on_delete=models.CASCADE, primary_key=True, related_name="usage"
    )
    packets = models.PositiveBigIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)
    first_hit_at = models.DateTimeField(null=True, blank=True)
    last_hit_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.rule_id}: {self.packets} packets"


class FirewallRuleSample(models.Model):
    """One bucket of a firewall rule's hits, with `RuleSample`'s steps, retention and pruning."""

    rule = models.ForeignKey(
        "fwaas.FirewallRule", on_delete=models.CASCADE, related_name="samples",
        db_constraint=False,
    )  # fmt: skip
    step = models.PositiveIntegerField()
    bucket = models.BigIntegerField()
    packets = models.PositiveBigIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rule", "step", "bucket"], name="fwrulesample_key")
        ]
        indexes = [models.Index(fields=["bucket", "step"], name="fwrulesample_age")]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.step}s@{self.bucket}"


class FirewallAccounting(models.Model):
    """Where a network node's firewall stream stands (`HostAccounting`'s fields for the
    routers' readings, numbered apart from the port chains'), and the built-in origins' totals:
    {kind: [packets, bytes]} (INVALID, established, the default drop)."""

    host = models.OneToOneField(
        "networks.Host", on_delete=models.CASCADE, primary_key=True,
        related_name="firewall_accounting",
    )  # fmt: skip
    run = models.FloatField(null=True, blank=True)
    seq = models.PositiveBigIntegerField(default=0)
    last_at = models.DateTimeField(null=True, blank=True)
    documents = models.PositiveBigIntegerField(default=0)
    lost_intervals = models.PositiveBigIntegerField(default=0)
    dropped_documents = models.PositiveBigIntegerField(default=0)
    last_loss_at = models.DateTimeField(null=True, blank=True)
    last_read_ms = models.FloatField(null=True, blank=True)
    builtin_totals = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.host_id} firewall r{self.run}#{self.seq}"
