"""Changing firewall rules, policies and groups: permission, validation, DB + audit, and the
network nodes a change reaches (`dispatch.network_nodes_changed`). Refusals raise the
`sgweb.tenancy.errors.ActionError` family and change nothing."""

from sgweb.fwaas.actions.groups import create_group, delete_group, port_in_group, update_group
from sgweb.fwaas.actions.policies import (
    create_policy,
    delete_policy,
    insert_rule,
    move_rule,
    remove_rule,
    update_policy,
)
from sgweb.fwaas.actions.rules import RULE_FIELDS, create_rule, delete_rule, update_rule

__all__ = [
    "RULE_FIELDS",
    "create_group",
    "create_policy",
    "create_rule",
    "delete_group",
    "delete_policy",
    "delete_rule",
    "insert_rule",
    "move_rule",
    "port_in_group",
    "remove_rule",
    "update_group",
    "update_policy",
    "update_rule",
]
