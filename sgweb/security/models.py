"""Security groups and their rules, with Neutron's fields."""

from __future__ import annotations

from django.db import models

from sgweb.security.choices import Direction, Ethertype
from sgweb.tenancy.models import Project
from sgweb.tenancy.standard import StandardAttributes


class SecurityGroup(StandardAttributes):
    """A project's named set of allow rules, applied to every port that uses it."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="security_groups")
    name = models.CharField(max_length=255, blank=True, default="")
    description = models.CharField(max_length=255, blank=True, default="")
    stateful = models.BooleanField(default=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["project", "name"]),
            # A project's page in id order (the API's default) without sorting all its rows.
            models.Index(fields=["project", "id"], name="group_project_page"),
        ]

    def __str__(self) -> str:
        return self.name or str(self.id)


class SecurityGroupRule(StandardAttributes):
    """One allow rule: direction, ethertype, protocol, ports and remote prefix or group."""

    security_group = models.ForeignKey(
        SecurityGroup, on_delete=models.CASCADE, related_name="rules"
    )
    project = models.ForeignKey(
        Project, on_delete=models.PROTECT, related_name="security_group_rules"
    )
    direction = models.CharField(max_length=7, choices=Direction.choices)
    ethertype = models.CharField(max_length=4, choices=Ethertype.choices, default=Ethertype.IPV4)
    # As the client gave it ("tcp", "6", "icmp", ...); None means any protocol. The API says
    # null for "not given" (any protocol, any prefix), so null, not "", is the stored value.
    protocol = models.CharField(max_length=40, null=True, blank=True)  # noqa: DJ001 (Neutron's null)
    port_range_min = models.IntegerField(null=True, blank=True)
    port_range_max = models.IntegerField(null=True, blank=True)
    remote_ip_prefix = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    # The prefix as a network ("10.0.0.5/24" -> "10.0.0.0/24"); used for duplicates and text.
    normalized_cidr = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    remote_group = models.ForeignKey(
        SecurityGroup,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="referencing_rules",
    )
    description = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["id"]
        # A project's page of rules in id order (the API's default) reads 101 index entries
        # instead of sorting the project's 10,000 rules (16 ms a page on SQLite).
        indexes = [
            models.Index(fields=["project", "id"], name="rule_project_page"),
            # The same for one group's rules (?security_group_id=, the CLI's rule list).
            models.Index(fields=["security_group", "id"], name="rule_group_page"),
        ]

    def __str__(self) -> str:
        """How the audit log and messages name a rule: "ingress tcp/22 from 203.0.113.0/24"."""
        family = " IPv6" if self.ethertype == Ethertype.IPV6 else ""
        words = f"{self.direction}{family} {self.protocol or 'any'}{self._ports_words()}"
        toward = "from" if self.direction == Direction.INGRESS else "to"
        if self.remote_group_id is not None:
            remote = self.remote_group
            return f"{words} {toward} group {remote.name if remote else self.remote_group_id}"
        if self.remote_ip_prefix:
            return f"{words} {toward} {self.normalized_cidr or self.remote_ip_prefix}"
        return words

    def _ports_words(self) -> str:
        low, high = self.port_range_min, self.port_range_max
        if (self.protocol or "").lower() in {"icmp", "1", "ipv6-icmp", "icmpv6", "58"}:
            if low is None:
                return ""
            return f" type {low}" + (f" code {high}" if high is not None else "")
        if low is None:
            return ""
        return f"/{low}" if high in (None, low) else f"/{low}-{high}"
