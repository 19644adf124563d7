"""OpenAPI field descriptions of security groups and rules (validation is in the actions)."""

from rest_framework import serializers

from sgweb.api.fielddocs import FieldMap, writable

RULE_FIELDS: FieldMap = {
    "security_group_id": serializers.UUIDField(),
    "direction": serializers.ChoiceField(["ingress", "egress"]),
    "ethertype": serializers.ChoiceField(["IPv4", "IPv6"], default="IPv4"),
    "protocol": serializers.CharField(
        allow_null=True, help_text="A name (tcp, udp, icmp, ...), a number 0-255, or null."
    ),
    "port_range_min": serializers.IntegerField(
        allow_null=True, help_text="First port, or the ICMP type."
    ),
    "port_range_max": serializers.IntegerField(
        allow_null=True, help_text="Last port, or the ICMP code."
    ),
    "remote_ip_prefix": serializers.CharField(allow_null=True),
    "normalized_cidr": serializers.CharField(allow_null=True, read_only=True),
    "remote_group_id": serializers.UUIDField(allow_null=True),
    "remote_address_group_id": serializers.UUIDField(allow_null=True, read_only=True),
    "description": serializers.CharField(max_length=255, allow_blank=True),
}
RULE_WRITABLE = writable(RULE_FIELDS, required=("security_group_id", "direction"))

GROUP_FIELDS: FieldMap = {
    "name": serializers.CharField(max_length=255),
    "description": serializers.CharField(max_length=255, allow_blank=True),
    "stateful": serializers.BooleanField(default=True),
    "shared": serializers.BooleanField(read_only=True),
    "security_group_rules": serializers.ListField(child=serializers.DictField(), read_only=True),
}
GROUP_WRITABLE: FieldMap = {
    "name": serializers.CharField(max_length=255),
    "description": serializers.CharField(max_length=255, required=False),
    "stateful": serializers.BooleanField(required=False),
    "project_id": serializers.CharField(required=False, help_text="Admins: any project."),
}
