"""OpenAPI field descriptions of networks, subnets and ports (validation is in the actions)."""

from rest_framework import serializers

from sgweb.api.fielddocs import FieldMap, writable

NETWORK_FIELDS: FieldMap = {
    "name": serializers.CharField(max_length=255),
    "description": serializers.CharField(max_length=255, allow_blank=True),
    "admin_state_up": serializers.BooleanField(),
    "shared": serializers.BooleanField(),
    "status": serializers.CharField(read_only=True),
    "subnets": serializers.ListField(child=serializers.UUIDField(), read_only=True),
}
NETWORK_WRITABLE: FieldMap = {
    "name": serializers.CharField(max_length=255, required=False),
    "description": serializers.CharField(max_length=255, required=False),
    "admin_state_up": serializers.BooleanField(required=False),
    "shared": serializers.BooleanField(required=False, help_text="Admins only."),
    "project_id": serializers.CharField(required=False),
}

SUBNET_FIELDS: FieldMap = {
    "name": serializers.CharField(max_length=255),
    "network_id": serializers.UUIDField(),
    "ip_version": serializers.ChoiceField([4, 6]),
    "cidr": serializers.CharField(),
    "gateway_ip": serializers.IPAddressField(allow_null=True),
    "enable_dhcp": serializers.BooleanField(),
    "dhcp_servers": serializers.ListField(child=serializers.IPAddressField()),
    "allocation_pools": serializers.ListField(child=serializers.DictField()),
}
SUBNET_WRITABLE = writable(SUBNET_FIELDS, required=("network_id", "cidr"))

PORT_FIELDS: FieldMap = {
    "name": serializers.CharField(max_length=255),
    "description": serializers.CharField(max_length=255, allow_blank=True),
    "network_id": serializers.UUIDField(),
    "mac_address": serializers.CharField(),
    "admin_state_up": serializers.BooleanField(),
    "status": serializers.CharField(read_only=True),
    "device_id": serializers.CharField(allow_blank=True),
    "device_owner": serializers.CharField(allow_blank=True),
    "fixed_ips": serializers.ListField(child=serializers.DictField()),
    "allowed_address_pairs": serializers.ListField(child=serializers.DictField()),
    "security_groups": serializers.ListField(child=serializers.UUIDField()),
    "port_security_enabled": serializers.BooleanField(),
    "binding:host_id": serializers.CharField(allow_blank=True, help_text="Admins only."),
    "device": serializers.CharField(read_only=True, help_text="tap + the id's first 11 chars."),
}
PORT_WRITABLE = writable(PORT_FIELDS, required=("network_id",))
