"""Neutron's "standard attributes", shared by every API resource model."""

from __future__ import annotations

import uuid

from django.db import models


class StandardAttributes(models.Model):
    """UUID primary key, timestamps and a revision number bumped by every change.

    The revision number is bumped by the action functions (not by `save`), so that saving
    bookkeeping fields never looks like a user-visible change.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    revision_number = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True

    def bump_revision(self) -> None:
        self.revision_number += 1
