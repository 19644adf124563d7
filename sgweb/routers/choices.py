from django.db import models

# Neutron's device_owner of a router's port on a tenant subnet.
ROUTER_INTERFACE = "network:router_interface"


class RouterStatus(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    DOWN = "DOWN", "Down"
    # Up, but no network node runs it (none registered, or its agent is silent).
    PENDING = "PENDING", "Pending"
