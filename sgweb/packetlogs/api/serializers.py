"""OpenAPI field descriptions of packet logs (validation is in the actions)."""

from rest_framework import serializers

from sgweb.api.fielddocs import FieldMap

LOG_FIELDS: FieldMap = {
    "name": serializers.CharField(max_length=255, allow_blank=True),
    "description": serializers.CharField(max_length=255, allow_blank=True),
    "resource_type": serializers.ChoiceField(["security_group"]),
    "resource_id": serializers.UUIDField(allow_null=True, help_text="A security group."),
    "target_id": serializers.UUIDField(allow_null=True, help_text="A port."),
    "event": serializers.ChoiceField(["ALL", "ACCEPT", "DROP"], default="ALL"),
    "enabled": serializers.BooleanField(default=True),
}
LOG_WRITABLE: FieldMap = {
    "name": serializers.CharField(max_length=255, required=False),
    "description": serializers.CharField(max_length=255, required=False),
    "resource_type": serializers.ChoiceField(["security_group"]),
    "resource_id": serializers.UUIDField(required=False),
    "target_id": serializers.UUIDField(required=False),
    "event": serializers.ChoiceField(["ALL", "ACCEPT", "DROP"], required=False),
    "enabled": serializers.BooleanField(required=False),
    "project_id": serializers.CharField(required=False, help_text="Admins: any project."),
}
