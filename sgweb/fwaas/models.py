"""FWaaS v2: firewall rules, policies (ordered rules) and groups (policies on router ports)."""

from __future__ import annotations

from django.db import models

from sgweb.fwaas.choices import RuleAction
from sgweb.networks.models import Port
from sgweb.tenancy.models import Project
from sgweb.tenancy.standard import StandardAttributes


class FirewallRule(StandardAttributes):
    """One FWaaS v2 rule: what it matches and whether it allows, denies or rejects."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="firewall_rules")
    name = models.CharField(max_length=255, blank=True, default="")
    description = models.CharField(max_length=255, blank=True, default="")
    protocol = models.CharField(max_length=8, null=True, blank=True)  # noqa: DJ001 (none: any)
    ip_version = models.PositiveSmallIntegerField(default=4)
    # An address or a CIDR of ip_version; none: any.
    source_ip_address = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    destination_ip_address = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    # "80" or "80:90" (tcp and udp only); none: any.
    source_port = models.CharField(max_length=11, null=True, blank=True)  # noqa: DJ001
    destination_port = models.CharField(max_length=11, null=True, blank=True)  # noqa: DJ001
    action = models.CharField(max_length=6, choices=RuleAction.choices, default=RuleAction.DENY_)
    enabled = models.BooleanField(default=True)
    shared = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name or str(self.id)


class FirewallPolicy(StandardAttributes):
    """An ordered list of firewall rules (through `PolicyRule`), shareable across projects."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="firewall_policies")
    name = models.CharField(max_length=255, blank=True, default="")
    description = models.CharField(max_length=255, blank=True, default="")
    shared = models.BooleanField(default=False)
    # Set by an auditor; any change of the policy or of one of its rules clears it (Neutron).
    audited = models.BooleanField(default=False)
    rules = models.ManyToManyField(
        FirewallRule, through="PolicyRule", related_name="policies", blank=True
    )

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "firewall policies"

    def __str__(self) -> str:
        return self.name or str(self.id)

    def ordered_rules(self) -> list[FirewallRule]:
        return [link.rule for link in self.rule_links.select_related("rule").order_by("position")]


class PolicyRule(models.Model):
    """A rule's place in a policy: position 1 is matched first."""

    policy = models.ForeignKey(FirewallPolicy, on_delete=models.CASCADE, related_name="rule_links")
    rule = models.ForeignKey(FirewallRule, on_delete=models.PROTECT, related_name="policy_links")
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "rule"], name="policy_rule_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.policy_id} #{self.position}: {self.rule_id}"


class FirewallGroup(StandardAttributes):
    """Router ports guarded by an ingress and an egress policy."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="firewall_groups")
    name = models.CharField(max_length=255, blank=True, default="")
    description = models.CharField(max_length=255, blank=True, default="")
    ingress_policy = models.ForeignKey(
        FirewallPolicy,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ingress_groups",
    )
    egress_policy = models.ForeignKey(
        FirewallPolicy,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="egress_groups",
    )
    admin_state_up = models.BooleanField(default=True)
    shared = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name or str(self.id)


class FirewallGroupPort(models.Model):
    """A router interface port a group filters; a port is in at most one group (Neutron)."""

    group = models.ForeignKey(FirewallGroup, on_delete=models.CASCADE, related_name="port_links")
    port = models.OneToOneField(Port, on_delete=models.CASCADE, related_name="firewall_group_link")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.group_id} on {self.port_id}"


class NodeRouterApply(models.Model):
    """A network node's last router apply report, as its agent sent it (`sgweb.fwaas.status`):
    a node that refused its router state makes the groups on its routers show ERROR."""

    host_name = models.CharField(max_length=255, unique=True)
    revision = models.BigIntegerField(default=0)
    ok = models.BooleanField(default=True)
    error = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.host_name} r{self.revision} {'ok' if self.ok else 'failed'}"
