"""Packet logs (Neutron's logging API v2.0): which ports' security-group events are logged."""

from __future__ import annotations

from django.db import models

from sgweb.networks.models import Port
from sgweb.packetlogs.choices import SECURITY_GROUP, LogEvent
from sgweb.security.models import SecurityGroup
from sgweb.tenancy.models import Project
from sgweb.tenancy.standard import StandardAttributes


class Log(StandardAttributes):
    """Log the events of a port (target), of the ports of a group (resource), of a group's
    ports among one port (both), or of every port of the project (neither), as Neutron does."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="packet_logs")
    name = models.CharField(max_length=255, blank=True, default="")
    description = models.CharField(max_length=255, blank=True, default="")
    resource_type = models.CharField(max_length=32, default=SECURITY_GROUP)
    resource = models.ForeignKey(
        SecurityGroup, on_delete=models.CASCADE, null=True, blank=True, related_name="logs"
    )
    target = models.ForeignKey(
        Port, on_delete=models.CASCADE, null=True, blank=True, related_name="logs"
    )
    event = models.CharField(max_length=6, choices=LogEvent.choices, default=LogEvent.ALL)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name or str(self.id)
