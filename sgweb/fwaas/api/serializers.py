"""OpenAPI field descriptions of FWaaS v2 resources (validation is in the actions)."""

from rest_framework import serializers

from sgweb.api.fielddocs import FieldMap, writable

RULE_FIELDS: FieldMap = {
    "name": serializers.CharField(max_length=255, allow_blank=True),
    "description": serializers.CharField(max_length=255, allow_blank=True),
    "protocol": serializers.ChoiceField(["tcp", "udp", "icmp"], allow_null=True),
    "ip_version": serializers.ChoiceField([4, 6]),
    "source_ip_address": serializers.CharField(allow_null=True, help_text="Address or CIDR."),
    "destination_ip_address": serializers.CharField(allow_null=True),
    "source_port": serializers.CharField(allow_null=True, help_text="'80' or '80:90'."),
    "destination_port": serializers.CharField(allow_null=True),
    "action": serializers.ChoiceField(["allow", "deny", "reject"]),
    "enabled": serializers.BooleanField(),
    "shared": serializers.BooleanField(help_text="Admins only."),
    "firewall_policy_id": serializers.ListField(child=serializers.UUIDField(), read_only=True),
}
RULE_WRITABLE = writable(RULE_FIELDS)

POLICY_FIELDS: FieldMap = {
    "name": serializers.CharField(max_length=255, allow_blank=True),
    "description": serializers.CharField(max_length=255, allow_blank=True),
    "firewall_rules": serializers.ListField(
        child=serializers.UUIDField(), help_text="In order: the first matches first."
    ),
    "audited": serializers.BooleanField(help_text="Cleared by any change."),
    "shared": serializers.BooleanField(help_text="Admins only."),
}
POLICY_WRITABLE = writable(POLICY_FIELDS)

GROUP_FIELDS: FieldMap = {
    "name": serializers.CharField(max_length=255, allow_blank=True),
    "description": serializers.CharField(max_length=255, allow_blank=True),
    "ingress_firewall_policy_id": serializers.UUIDField(allow_null=True),
    "egress_firewall_policy_id": serializers.UUIDField(allow_null=True),
    "ports": serializers.ListField(
        child=serializers.UUIDField(), help_text="Router interface ports."
    ),
    "admin_state_up": serializers.BooleanField(),
    "shared": serializers.BooleanField(help_text="Admins only."),
    "status": serializers.ChoiceField(
        ["ACTIVE", "INACTIVE", "PENDING", "ERROR", "DOWN"], read_only=True
    ),
}
GROUP_WRITABLE = writable(GROUP_FIELDS)
