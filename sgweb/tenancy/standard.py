"""Neutron's "standard attributes", shared by every API resource model."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.contrib.contenttypes.fields import GenericRelation
from django.db import models


def changed_fields(instance: models.Model, values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `values` that differ from the instance's current field values."""
    return {key: value for key, value in values.items() if getattr(instance, key) != value}


class StandardAttributes(models.Model):
    """UUID primary key, timestamps and a revision number bumped by every change.

    The revision number is bumped by the action functions (not by `save`), so that saving
    bookkeeping fields never looks like a user-visible change.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    revision_number = models.PositiveIntegerField(default=0)
    # Neutron's tags (standard-attr-tag); deleting the resource deletes its tags.
    tag_set = GenericRelation("tenancy.Tag")

    class Meta:
        abstract = True

    def bump_revision(self) -> None:
        self.revision_number += 1

    def save_changes(self, changed: Mapping[str, Any]) -> None:
        """An action's update: set the changed fields, bump the revision, save."""
        for key, value in changed.items():
            setattr(self, key, value)
        self.bump_revision()
        self.save()
