"""Projects (Neutron's tenants), users' roles and memberships, API tokens and quotas."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models

from sgweb.tenancy.choices import Role
from sgweb.tenancy.standard import StandardAttributes


class Project(StandardAttributes):
    """A tenant: what its members own (groups, networks, ports) and its quotas."""

    name = models.CharField(max_length=255, unique=True)
    description = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Profile(models.Model):
    """A user's role across the whole control plane (admin, member or reader)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"


class Membership(models.Model):
    """A user's membership of a project."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "project"], name="membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project}"


TOKEN_PREFIX_LENGTH = 8


def hash_token_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_token_key() -> str:
    # A key starting with "-" is read as an option by argparse-based clients (`openstack
    # --os-token -abc...` fails with "expected one argument"), so such keys are drawn again.
    while True:
        key = secrets.token_urlsafe(32)
        if not key.startswith("-"):
            return key


class ApiToken(models.Model):
    """A bearer key for `X-Auth-Token`; only its hash is stored, the key is shown once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=255)
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=TOKEN_PREFIX_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


def default_security_group_quota() -> int:
    return settings.QUOTA_SECURITY_GROUPS


def default_security_group_rule_quota() -> int:
    return settings.QUOTA_SECURITY_GROUP_RULES


class Quota(models.Model):
    """A project's limits: security groups and security group rules."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="quota")
    # -1 means unlimited, as in Neutron.
    security_groups = models.IntegerField(default=default_security_group_quota)
    security_group_rules = models.IntegerField(default=default_security_group_rule_quota)

    def __str__(self) -> str:
        return f"quota of {self.project}"


class Tag(models.Model):
    """A tag on a resource with standard attributes (Neutron's standard-attr-tag): groups,
    rules, networks, subnets and ports. The resource holds `tag_set`, so tags go with it."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.UUIDField()
    tag = models.CharField(max_length=255)

    class Meta:
        ordering = ["tag"]
        constraints = [
            models.UniqueConstraint(
                fields=["content_type", "object_id", "tag"], name="tag_once_per_resource"
            )
        ]
        # ?tags=... asks "which resources of this kind carry the tag".
        indexes = [models.Index(fields=["content_type", "tag"])]

    def __str__(self) -> str:
        return self.tag


class IdempotentRequest(models.Model):
    """The answer to an API write sent with an `Idempotency-Key` header, kept for a day.

    Stored in the same transaction as the change, so a client whose connection broke after the
    commit gets the very same answer when it retries, instead of a second change or a refusal
    (409: the rule exists already; 404: the group is gone).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="idempotent_requests"
    )
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)  # sha256 of method, path and body
    status = models.PositiveSmallIntegerField()
    body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.key} -> {self.status}"
