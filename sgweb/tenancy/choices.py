from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"  # sees and changes everything
    MEMBER = "member", "Member"  # works inside the projects they belong to
    READER = "reader", "Reader"  # the security team: sees every project, changes nothing
