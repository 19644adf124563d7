from django.db import models


class HostStatus(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    IN_SYNC = "in-sync", "In sync"
    SYNCING = "syncing", "Syncing"
    FAILED = "failed", "Failed"
    DOWN = "down", "Down"


# No agent reports for the host (never seen, or its heartbeat stopped).
AGENT_SILENT = frozenset({HostStatus.UNKNOWN, HostStatus.DOWN})


class PortStatus(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    DOWN = "DOWN", "Down"


class IpVersion(models.IntegerChoices):
    V4 = 4, "IPv4"
    V6 = 6, "IPv6"
