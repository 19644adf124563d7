"""Dashboard routes. Paths have no trailing slash, like the API (APPEND_SLASH is off)."""

from django.urls import path

from sgweb.dashboard.views import (
    audit,
    drops,
    firewall_groups,
    firewall_policies,
    firewall_rules,
    firewalls,
    hosts,
    networks,
    overview,
    ports,
    projects,
    security_groups,
    session,
    tokens,
    traces,
    users,
)

app_name = "dashboard"

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("session/project", session.switch_project, name="switch_project"),
    path("help/keyboard", session.keyboard_help, name="help"),
    # Security groups and rules
    path("security-groups", security_groups.group_list, name="security_groups"),
    path("security-groups/new", security_groups.group_new, name="security_group_new"),
    path("security-groups/<str:group_id>", security_groups.group_detail, name="security_group"),
    path(
        "security-groups/<str:group_id>/edit",
        security_groups.group_update,
        name="security_group_update",
    ),
    path(
        "security-groups/<str:group_id>/delete",
        security_groups.group_delete,
        name="security_group_delete",
    ),
    path("security-groups/<str:group_id>/rules", security_groups.rule_create, name="rule_create"),
    path(
        "security-groups/<str:group_id>/rules/<str:rule_id>/delete",
        security_groups.rule_delete,
        name="rule_delete",
    ),
    # Ports
    path("ports", ports.port_list, name="ports"),
    path("ports/<str:port_id>", ports.port_detail, name="port"),
    path("ports/<str:port_id>/groups", ports.port_add_group, name="port_add_group"),
    path(
        "ports/<str:port_id>/groups/<str:group_id>/remove",
        ports.port_remove_group,
        name="port_remove_group",
    ),
    path("ports/<str:port_id>/port-security", ports.port_security, name="port_security"),
    path("ports/<str:port_id>/address-pairs", ports.pair_add, name="pair_add"),
    path(
        "ports/<str:port_id>/address-pairs/<int:pair_id>/remove",
        ports.pair_remove,
        name="pair_remove",
    ),
    # Networks and subnets
    path("networks", networks.network_list, name="networks"),
    path("networks/new", networks.network_new, name="network_new"),
    path("networks/<str:network_id>", networks.network_detail, name="network"),
    path("networks/<str:network_id>/edit", networks.network_update, name="network_update"),
    path("networks/<str:network_id>/delete", networks.network_delete, name="network_delete"),
    path("networks/<str:network_id>/subnets", networks.subnet_create, name="subnet_create"),
    path(
        "networks/<str:network_id>/subnets/<str:subnet_id>/edit",
        networks.subnet_update,
        name="subnet_update",
    ),
    path(
        "networks/<str:network_id>/subnets/<str:subnet_id>/delete",
        networks.subnet_delete,
        name="subnet_delete",
    ),
    # Routers and FWaaS v2 (issue 16)
    path("routers", firewalls.router_list, name="routers"),
    path("routers/<str:router_id>", firewalls.router_detail, name="router"),
    path("routers/<str:router_id>/hits", firewalls.router_hits, name="router_hits"),
    path("firewall-groups", firewall_groups.group_list, name="firewall_groups"),
    path("firewall-groups/new", firewall_groups.group_new, name="firewall_group_new"),
    path("firewall-groups/<str:group_id>", firewall_groups.group_detail, name="firewall_group"),
    path(
        "firewall-groups/<str:group_id>/edit",
        firewall_groups.group_update,
        name="firewall_group_update",
    ),
    path(
        "firewall-groups/<str:group_id>/delete",
        firewall_groups.group_delete,
        name="firewall_group_delete",
    ),
    path("firewall-policies", firewall_policies.policy_list, name="firewall_policies"),
    path("firewall-policies/new", firewall_policies.policy_new, name="firewall_policy_new"),
    path(
        "firewall-policies/<str:policy_id>",
        firewall_policies.policy_detail,
        name="firewall_policy",
    ),
    path(
        "firewall-policies/<str:policy_id>/edit",
        firewall_policies.policy_update,
        name="firewall_policy_update",
    ),
    path(
        "firewall-policies/<str:policy_id>/delete",
        firewall_policies.policy_delete,
        name="firewall_policy_delete",
    ),
    path(
        "firewall-policies/<str:policy_id>/rules",
        firewall_policies.policy_insert_rule,
        name="firewall_policy_insert_rule",
    ),
    path(
        "firewall-policies/<str:policy_id>/rules/<str:rule_id>/move",
        firewall_policies.policy_move_rule,
        name="firewall_policy_move_rule",
    ),
    path(
        "firewall-policies/<str:policy_id>/rules/<str:rule_id>/remove",
        firewall_policies.policy_remove_rule,
        name="firewall_policy_remove_rule",
    ),
    path("firewall-rules", firewall_rules.rule_list, name="firewall_rules"),
    path("firewall-rules/new", firewall_rules.rule_new, name="firewall_rule_new"),
    path("firewall-rules/<str:rule_id>", firewall_rules.rule_detail, name="firewall_rule"),
    path(
        "firewall-rules/<str:rule_id>/edit",
        firewall_rules.rule_update,
        name="firewall_rule_update",
    ),
    path(
        "firewall-rules/<str:rule_id>/delete",
        firewall_rules.rule_delete,
        name="firewall_rule_delete",
    ),
    # Packet traces (issue 5)
    path("traces", traces.trace_list, name="traces"),
    path("traces/new", traces.trace_new, name="trace_new"),
    path("traces/ports", traces.port_suggestions, name="trace_ports"),
    path("traces/<str:trace_id>", traces.trace_detail, name="trace"),
    # The drop log (issue 13)
    path("drops", drops.drop_list, name="drops"),
    path("drops/<str:key>/trace", drops.drop_trace, name="drop_trace"),
    path("drops/<str:key>/allow", drops.drop_allow, name="drop_allow"),
    # Hosts
    path("hosts", hosts.host_list, name="hosts"),
    # Host names may hold slashes (any binding:host_id Neutron accepts).
    path("hosts/<path:name>/decommission", hosts.host_decommission, name="host_decommission"),
    path("hosts/<path:name>", hosts.host_detail, name="host"),
    # Projects, members, quotas
    path("projects", projects.project_list, name="projects"),
    path("projects/new", projects.project_new, name="project_new"),
    path("projects/<str:project_id>", projects.project_detail, name="project"),
    path("projects/<str:project_id>/quota", projects.quota_update, name="quota_update"),
    path("projects/<str:project_id>/members", projects.member_add, name="member_add"),
    path(
        "projects/<str:project_id>/members/<int:user_id>/remove",
        projects.member_remove,
        name="member_remove",
    ),
    # Users and roles
    path("users", users.user_list, name="users"),
    path("users/<int:user_id>/role", users.user_role, name="user_role"),
    # Audit log
    path("audit", audit.audit_list, name="audit"),
    path("audit/<str:entry_id>", audit.audit_detail, name="audit_entry"),
    # API tokens
    path("tokens", tokens.token_list, name="tokens"),
    path("tokens/<str:token_id>/revoke", tokens.token_revoke, name="token_revoke"),
]
