"""Routers (Neutron's routers API, routing only) and their interfaces on tenant subnets."""

from __future__ import annotations

from django.db import models

from sgweb.networks.choices import AGENT_SILENT
from sgweb.networks.models import Host, Port, Subnet
from sgweb.routers.choices import RouterStatus
from sgweb.tenancy.models import Project
from sgweb.tenancy.standard import StandardAttributes


class Router(StandardAttributes):
    """A virtual router: a namespace on one network node with a `qr-` interface per subnet."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="routers")
    name = models.CharField(max_length=255, blank=True, default="")
    description = models.CharField(max_length=255, blank=True, default="")
    admin_state_up = models.BooleanField(default=True)
    # The network node it runs on (Neutron's l3 agent scheduling); None until one exists.
    host = models.ForeignKey(
        Host, on_delete=models.SET_NULL, null=True, blank=True, related_name="routers"
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name or str(self.id)

    @property
    def status(self) -> str:
        if not self.admin_state_up:
            return RouterStatus.DOWN
        if self.host is None or self.host.status in AGENT_SILENT:
            return RouterStatus.PENDING
        return RouterStatus.ACTIVE


class RouterInterface(models.Model):
    """A router's port on one subnet (Neutron's routerports): the port holds the subnet's
    gateway address and is owned by the router (device_owner network:router_interface)."""

    router = models.ForeignKey(Router, on_delete=models.PROTECT, related_name="interfaces")
    port = models.OneToOneField(Port, on_delete=models.CASCADE, related_name="router_interface")
    subnet = models.ForeignKey(Subnet, on_delete=models.PROTECT, related_name="router_interfaces")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["router", "subnet"], name="router_interface_per_subnet")
        ]

    def __str__(self) -> str:
        return f"{self.router_id} on {self.subnet_id}"
