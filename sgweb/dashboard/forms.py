"""Dashboard forms. They only carry what the user typed: every check is made by the shared
validators inside the action functions, so the API and the pages refuse the same input with the
same words. Fields are plain text here on purpose (a Django IntegerField would answer first,
in its own words)."""

from __future__ import annotations

from typing import Any

from django import forms

from sgweb.dashboard.presentation import PRESETS_BY_KEY
from sgweb.security.validators import NEUTRON_PORT_PROTOCOLS


def _text(required: bool = False) -> forms.CharField:
    # No max_length here: the validators say how long is too long, with their message.
    return forms.CharField(required=required, strip=False, empty_value="")


def _has_ports(protocol: object) -> bool:
    return str(protocol or "").lower() in NEUTRON_PORT_PROTOCOLS


class SecurityGroupForm(forms.Form):
    name = _text()
    description = _text()
    # "true" | "false"; empty leaves the group as it is (the action checks the value).
    stateful = _text()

    def changes(self) -> dict[str, Any]:
        """The action's keywords: name, description, and stateful when the page sent it."""
        data = self.cleaned_data
        values: dict[str, Any] = {"name": data["name"], "description": data["description"]}
        if data.get("stateful"):
            values["stateful"] = data["stateful"]
        return values


class NewSecurityGroupForm(SecurityGroupForm):
    project = _text()


class RuleForm(forms.Form):
    preset = _text()
    direction = _text()
    ethertype = _text()
    protocol = _text()
    port_range_min = _text()
    port_range_max = _text()
    remote_kind = _text()
    remote_ip_prefix = _text()
    remote_group_id = _text()
    description = _text()

    def rule_fields(self) -> list[dict[str, object]]:
        """The Neutron rule fields to create; a preset such as DNS stands for several rules."""
        base = _rule_base(self.cleaned_data)
        preset = PRESETS_BY_KEY.get(self.cleaned_data.get("preset") or "")
        if preset is None or preset.key == "custom":
            return [base]
        rules = []
        for fields in preset.expand():
            rule = {**base, **fields}
            if base["ethertype"] == "IPv6" and fields["protocol"] == "icmp":
                # Echo request is type 8 in ICMP and 128 in ICMPv6.
                rule["protocol"] = "ipv6-icmp"
                if rule["port_range_min"] == 8:
                    rule["port_range_min"] = 128
            rules.append(rule)
        return rules


def _rule_base(data: dict[str, Any]) -> dict[str, object]:
    """The rule form's own fields as the API takes them (empty: left out, None)."""

    def text(key: str) -> str | None:
        return (data.get(key) or "").strip() or None

    base: dict[str, object] = {
        "direction": data.get("direction") or "ingress",
        "ethertype": data.get("ethertype") or "IPv4",
        "protocol": text("protocol"),
        "port_range_min": text("port_range_min"),
        "port_range_max": text("port_range_max"),
        "description": data.get("description") or "",
    }
    if base["port_range_min"] and not base["port_range_max"] and _has_ports(base["protocol"]):
        # The page offers "a single port" by leaving the maximum empty; the API (as
        # Neutron) wants both ends, so the form says what the user meant.
        base["port_range_max"] = base["port_range_min"]
    # Only the chosen kind of remote is sent, so a stale value in the hidden field
    # cannot make the rule ambiguous.
    if (data.get("remote_kind") or "cidr") == "group":
        base["remote_group_id"] = text("remote_group_id")
    else:
        base["remote_ip_prefix"] = text("remote_ip_prefix")
    return base


class PortGroupsForm(forms.Form):
    security_group = _text(required=True)


class AddressPairForm(forms.Form):
    ip_address = _text()
    mac_address = _text()


class NetworkForm(forms.Form):
    name = _text()
    description = _text()
    project = _text()

    def changes(self) -> dict[str, Any]:
        """The action's keywords: name and description."""
        return {"name": self.cleaned_data["name"], "description": self.cleaned_data["description"]}


class ProjectForm(forms.Form):
    name = _text()
    description = _text()


class SubnetForm(forms.Form):
    name = _text()
    cidr = _text()
    ip_version = _text()
    gateway_ip = _text()
    enable_dhcp = forms.BooleanField(required=False)
    dhcp_servers = _text()


class TokenForm(forms.Form):
    name = _text()
    expires_in_days = _text()


class QuotaForm(forms.Form):
    security_groups = _text()
    security_group_rules = _text()


class MemberForm(forms.Form):
    username = _text()


class UserForm(forms.Form):
    username = _text()
    email = _text()
    password = _text()
    role = _text()


class TraceForm(forms.Form):
    """A packet to trace. Each end is a port (picked by search: its id, or a unique name) or an
    address; `start_trace` validates the rest with the tracer's own checks."""

    source_kind = _text()  # "port" | "address"
    source_port = _text()
    source_address = _text()
    destination_kind = _text()
    destination_port = _text()
    destination_address = _text()
    protocol = _text()
    port = _text()
    icmp_type = _text()
    icmp_code = _text()


# FWaaS v2 (issue 16). As above, the fwaas actions check every value; ids are looked up by
# the views among the objects the user may see.


class FirewallRuleForm(forms.Form):
    name = _text()
    description = _text()
    protocol = _text()  # tcp | udp | icmp | any
    ip_version = _text()
    source_ip_address = _text()
    source_port = _text()
    destination_ip_address = _text()
    destination_port = _text()
    action = _text()
    enabled = forms.BooleanField(required=False)
    shared = forms.BooleanField(required=False)

    def changes(self, *, may_share: bool) -> dict[str, Any]:
        """The action's keywords (`shared` only from an admin's page: see `sharing`)."""
        data = self.cleaned_data
        values: dict[str, Any] = {
            "name": data["name"],
            "description": data["description"],
            "protocol": data["protocol"].strip() or None,
            "ip_version": data["ip_version"].strip() or "4",
            "action": data["action"].strip() or "deny",
            "enabled": bool(data.get("enabled")),
        }
        for field in ("source_ip_address", "source_port", "destination_ip_address",
                      "destination_port"):  # fmt: skip
            values[field] = data[field].strip() or None
        return values | sharing(self, may_share=may_share)


class NewFirewallRuleForm(FirewallRuleForm):
    project = _text()


def sharing(form: forms.Form, *, may_share: bool) -> dict[str, Any]:
    """`shared` for the action, only from an admin's page: no one else is shown the box, so an
    unchecked box that was never there must not unshare anything."""
    return {"shared": bool(form.cleaned_data.get("shared"))} if may_share else {}


class FirewallPolicyForm(forms.Form):
    name = _text()
    description = _text()
    shared = forms.BooleanField(required=False)


class NewFirewallPolicyForm(FirewallPolicyForm):
    """A new policy's rules: the ticked `firewall_rules`, ordered by the position typed next to
    each (`position-<rule id>`); rules without a position follow, in the page's order."""

    project = _text()
    firewall_rules = forms.MultipleChoiceField(required=False)

    def __init__(self, *args: Any, rule_ids: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["firewall_rules"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [(rule_id, rule_id) for rule_id in rule_ids or []]
        field.error_messages["invalid_choice"] = "Choose rules of this project or shared ones."

    def ordered_rule_ids(self) -> list[str]:
        picked = list(self.cleaned_data.get("firewall_rules") or [])

        def place(item: tuple[int, str]) -> tuple[int, int, int]:
            index, rule_id = item
            typed = str(self.data.get(f"position-{rule_id}", "")).strip()
            return (0, int(typed), index) if typed.isdigit() else (1, 0, index)

        return [rule_id for _, rule_id in sorted(enumerate(picked), key=place)]


class InsertFirewallRuleForm(forms.Form):
    firewall_rule_id = _text(required=True)
    # "top" | "bottom" | "before" | "after" (the last two name `reference`).
    where = _text()
    reference = _text()


class FirewallGroupForm(forms.Form):
    name = _text()
    description = _text()
    ingress_policy = _text()
    egress_policy = _text()
    ports = forms.MultipleChoiceField(required=False)
    admin_state_up = forms.BooleanField(required=False)
    shared = forms.BooleanField(required=False)

    def __init__(self, *args: Any, port_ids: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["ports"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [(port_id, port_id) for port_id in port_ids or []]
        field.error_messages["invalid_choice"] = "Choose router interfaces of this project."


class NewFirewallGroupForm(FirewallGroupForm):
    project = _text()
