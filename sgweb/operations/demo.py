"""Demo data for `manage.py up`: an admin, a project with a network, groups, ports and hosts.

Everything goes through the action functions, so the audit log shows how the demo was built.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction

from sgweb.networks import actions as networks
from sgweb.networks.models import Host
from sgweb.security import actions as security
from sgweb.tenancy import actions as tenancy
from sgweb.tenancy.choices import Role
from sgweb.tenancy.models import Profile, Project

DEMO_PROJECT = "demo"
DEMO_HOSTS = ("compute1", "compute2")


@dataclass
class DemoAdmin:
    username: str
    password: str | None  # None when an existing admin kept their password
    token: str


def ensure_admin(username: str = "admin", *, reset_password: bool = False) -> DemoAdmin:
    user = User.objects.filter(username=username).first()
    password: str | None = None
    if user is None:
        password = secrets.token_urlsafe(12)
        user = User.objects.create_user(username=username, password=password)
        user.is_staff = True
        user.is_superuser = True
        user.save()
    elif reset_password:
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.save()
    profile, _ = Profile.objects.get_or_create(user=user, defaults={"role": Role.ADMIN})
    if profile.role != Role.ADMIN:
        profile.role = Role.ADMIN
        profile.save()
    _, key = tenancy.create_api_token(user, name="manage.py up")
    return DemoAdmin(username=username, password=password, token=key)


@transaction.atomic
def ensure_demo(admin: User) -> bool:
    """Create the demo project once; False when it already exists."""
    if Project.objects.filter(name=DEMO_PROJECT).exists():
        return False
    for name in DEMO_HOSTS:
        if not Host.objects.filter(name=name).exists():
            # No agent runs for them (the lab's hosts have one): said so, they are not broken.
            networks.create_host(admin, name=name, description="demo host, no agent")
    project = tenancy.create_project(admin, name=DEMO_PROJECT, description="Demo project")
    tenancy.add_member(admin, project, admin)
    network = networks.create_network(admin, project, name="demo-net")
    networks.create_subnet(admin, network, name="demo-v4", cidr="192.0.2.0/24")
    networks.create_subnet(admin, network, name="demo-v6", cidr="2001:db8:1::/64")
    web = security.create_security_group(
        admin, project, name="web", description="Web servers: SSH, HTTP, HTTPS, ping"
    )
    for protocol, port in (("tcp", 22), ("tcp", 80), ("tcp", 443)):
        security.create_security_group_rule(
            admin,
            web,
            direction="ingress",
            protocol=protocol,
            port_range_min=port,
            port_range_max=port,
        )
    security.create_security_group_rule(admin, web, direction="ingress", protocol="icmp")
    db = security.create_security_group(
        admin, project, name="db", description="PostgreSQL, reachable from the web servers"
    )
    security.create_security_group_rule(
        admin,
        db,
        direction="ingress",
        protocol="tcp",
        port_range_min=5432,
        port_range_max=5432,
        remote_group_id=str(web.id),
    )
    for name, host, group in (
        ("web-1", "compute1", web),
        ("web-2", "compute2", web),
        ("db-1", "compute2", db),
    ):
        networks.create_port(
            admin, project, network, name=name, host=host, security_groups=[str(group.id)]
        )
    return True
