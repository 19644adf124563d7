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
        indexes = [models.Index(fields=["project", "name"])]

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

    def __str__(self) -> str:
        return f"{self.direction} {self.ethertype} {self.protocol or 'any'}"
