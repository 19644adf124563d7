from django.db import models

from sgweb.firewall.fwaas.model import ALLOW, DENY, REJECT


class RuleAction(models.TextChoices):
    ALLOW_ = ALLOW, "Allow"
    DENY_ = DENY, "Deny"
    REJECT_ = REJECT, "Reject"


class FirewallGroupStatus(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    INACTIVE = "INACTIVE", "Inactive"  # no ports: filters nothing
    PENDING = "PENDING", "Pending"  # a router it is on has no running network node yet
    ERROR = "ERROR", "Error"  # a network node it is on failed to apply
    DOWN = "DOWN", "Down"  # admin_state_up false
