from django.db import models


class Direction(models.TextChoices):
    INGRESS = "ingress", "Ingress"
    EGRESS = "egress", "Egress"


class Ethertype(models.TextChoices):
    IPV4 = "IPv4", "IPv4"
    IPV6 = "IPv6", "IPv6"


DEFAULT_GROUP_NAME = "default"
DEFAULT_GROUP_DESCRIPTION = "Default security group"
