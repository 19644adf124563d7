from django.db import models


class HostStatus(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    IN_SYNC = "in-sync", "In sync"
    SYNCING = "syncing", "Syncing"
    FAILED = "failed", "Failed"
    DOWN = "down", "Down"


class IpVersion(models.IntegerChoices):
    V4 = 4, "IPv4"
    V6 = 6, "IPv6"
