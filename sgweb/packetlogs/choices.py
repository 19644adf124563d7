from django.db import models

# The only loggable resource type (Neutron's logging API for security groups).
SECURITY_GROUP = "security_group"


class LogEvent(models.TextChoices):
    ALL = "ALL"
    ACCEPT = "ACCEPT"
    DROP = "DROP"
