"""OpenAPI field descriptions of routers (validation is in the actions)."""

from rest_framework import serializers

from sgweb.api.fielddocs import FieldMap

ROUTER_FIELDS: FieldMap = {
    "name": serializers.CharField(max_length=255, allow_blank=True),
    "description": serializers.CharField(max_length=255, allow_blank=True),
    "admin_state_up": serializers.BooleanField(),
    "status": serializers.ChoiceField(["ACTIVE", "DOWN", "PENDING"], read_only=True),
    "external_gateway_info": serializers.DictField(read_only=True, allow_null=True),
    "routes": serializers.ListField(child=serializers.DictField(), read_only=True),
}
ROUTER_WRITABLE: FieldMap = {
    "name": serializers.CharField(max_length=255, required=False),
    "description": serializers.CharField(max_length=255, required=False),
    "admin_state_up": serializers.BooleanField(required=False),
    "project_id": serializers.CharField(required=False, help_text="Admins: any project."),
}
