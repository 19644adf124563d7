"""Shared by the rule, policy and group actions: quotas, visibility, and which network nodes
a change reaches."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Model, Q, QuerySet

from sgweb import dispatch
from sgweb.fwaas.models import FirewallGroup, FirewallPolicy, FirewallRule
from sgweb.networks.models import Host
from sgweb.tenancy.access import can_see_project, is_admin
from sgweb.tenancy.errors import NotFound, OverQuota
from sgweb.tenancy.models import Project

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    Actor = User | AnonymousUser | None

UNSET: Any = object()


def check_quota(project: Project, model: type[Model], setting: str, resource: str) -> None:
    """Inside the transaction, after locking the project row."""
    limit = getattr(settings, setting)
    used = model._default_manager.filter(project=project).count()
    if 0 <= limit <= used:
        raise OverQuota(
            f"Quota exceeded for resources: ['{resource}'].",
            errors={"__all__": [f"The project may have {limit} {resource}s."]},
        )


def usable_by(actor: Actor, project: Project, obj: Any) -> bool:
    """A rule (policy) may be put into a policy (group) of `project` when it is the project's
    own or shared (admins may use any)."""
    if is_admin(actor):
        return True
    return bool(obj.project_id == project.id or (obj.shared and can_see_project(actor, project.id)))


def nodes_of_groups(groups: QuerySet[FirewallGroup] | Iterable[Any]) -> set[str]:
    """The network nodes running the routers whose interfaces these groups filter."""
    ids = [getattr(group, "pk", group) for group in groups]
    hosts = Host.objects.filter(
        routers__interfaces__port__firewall_group_link__group__in=ids
    ).values_list("name", flat=True)
    return set(hosts)


def groups_using_policies(policy_ids: Iterable[Any]) -> QuerySet[FirewallGroup]:
    ids = list(policy_ids)
    return FirewallGroup.objects.filter(Q(ingress_policy__in=ids) | Q(egress_policy__in=ids))


def nodes_of_policies(policy_ids: Iterable[Any]) -> set[str]:
    return nodes_of_groups(groups_using_policies(policy_ids).values_list("pk", flat=True))


def nodes_of_rule(rule: FirewallRule) -> set[str]:
    return nodes_of_policies(rule.policy_links.values_list("policy_id", flat=True))


def tell_nodes(reason: str, hosts: Iterable[str]) -> None:
    dispatch.network_nodes_changed(reason, hosts=hosts)


def rule_not_found(rule_id: object) -> NotFound:
    return NotFound(
        f"Firewall Rule {rule_id} could not be found.", neutron_type="FirewallRuleNotFound"
    )


def policy_not_found(policy_id: object) -> NotFound:
    return NotFound(
        f"Firewall Policy {policy_id} could not be found.", neutron_type="FirewallPolicyNotFound"
    )


def repr_of(obj: FirewallRule | FirewallPolicy | FirewallGroup) -> str:
    return obj.name or str(obj.id)
