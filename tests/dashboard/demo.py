"""Demo data for looking at the dashboard and for its benchmark.

`seed_demo()` builds a small, realistic world through the action functions (so the audit log
fills up as in real use). `seed_bulk(ports=..., rules=...)` adds thousands of rows with
bulk_create for the speed benchmark only: fixtures, not product code.
"""

from __future__ import annotations

import ipaddress
import uuid
from datetime import timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from sgweb.networks import actions as network_actions
from sgweb.networks.models import FixedIP, Host, Network, Port, PortSecurityGroup, Subnet
from sgweb.security import actions as security_actions
from sgweb.security.models import SecurityGroup, SecurityGroupRule
from sgweb.tenancy.choices import Role
from sgweb.tenancy.models import Membership, Profile, Project, Quota

PASSWORD = "correct horse battery staple"


def _user(username: str, role: str, *projects: Project) -> User:
    user, created = User.objects.get_or_create(username=username)
    if created:
        user.set_password(PASSWORD)
        user.save()
        Profile.objects.create(user=user, role=role)
    for project in projects:
        Membership.objects.get_or_create(user=user, project=project)
    return user


def seed_demo() -> dict[str, object]:
    now = timezone.now()
    alpha, _ = Project.objects.get_or_create(name="alpha", defaults={"description": "Web shop"})
    bravo, _ = Project.objects.get_or_create(name="bravo", defaults={"description": "Analytics"})
    for project in (alpha, bravo):
        Quota.objects.get_or_create(project=project)
    adam = _user("adam", Role.ADMIN)
    alice = _user("alice", Role.MEMBER, alpha)
    _user("bob", Role.MEMBER, alpha)
    _user("charlie", Role.MEMBER, bravo)
    _user("rita", Role.READER)

    hosts = {
        "compute-1": dict(
            status="in-sync",
            desired_revision=42,
            applied_revision=42,
            last_apply_duration_ms=38,
            last_heartbeat_at=now,
        ),
        "compute-2": dict(
            status="syncing",
            desired_revision=43,
            applied_revision=41,
            last_apply_duration_ms=51,
            last_heartbeat_at=now,
        ),
        "compute-3": dict(
            status="failed",
            desired_revision=17,
            applied_revision=16,
            last_apply_duration_ms=12,
            last_heartbeat_at=now,
            last_error="iptables-restore: line 57 failed: Chain "
            "'neutron-openvswi-i6e3f2eda-3' already exists",
        ),
        "compute-4": dict(
            status="down",
            desired_revision=9,
            applied_revision=9,
            last_apply_duration_ms=44,
            last_heartbeat_at=now - timedelta(minutes=14),
        ),
    }
    for name, fields in hosts.items():
        Host.objects.update_or_create(
            name=name, defaults={**fields, "last_apply_at": now - timedelta(seconds=20)}
        )

    if Network.objects.filter(project=alpha).exists():
        return {"alpha": alpha, "bravo": bravo}
    net = network_actions.create_network(alice, alpha, name="web-net")
    network_actions.create_subnet(alice, net, cidr="192.0.2.0/24", name="web-v4")
    network_actions.create_subnet(adam, net, cidr="2001:db8:10::/64", name="web-v6")
    web = security_actions.create_security_group(
        alice, alpha, name="web", description="Public web servers"
    )
    db = security_actions.create_security_group(
        alice, alpha, name="db", description="PostgreSQL primaries and replicas"
    )
    for fields in (
        dict(
            direction="ingress",
            protocol="tcp",
            port_range_min=22,
            port_range_max=22,
            remote_ip_prefix="203.0.113.0/24",
            description="SSH from the bastion network",
        ),
        dict(direction="ingress", protocol="tcp", port_range_min=80, port_range_max=80),
        dict(direction="ingress", protocol="tcp", port_range_min=443, port_range_max=443),
        dict(direction="ingress", protocol="icmp", port_range_min=8),
        dict(
            direction="ingress",
            ethertype="IPv6",
            protocol="tcp",
            port_range_min=443,
            port_range_max=443,
            remote_ip_prefix="2001:db8::/32",
        ),
    ):
        security_actions.create_security_group_rule(alice, web, **fields)
    security_actions.create_security_group_rule(
        alice,
        db,
        direction="ingress",
        protocol="tcp",
        port_range_min=5432,
        port_range_max=5432,
        remote_group_id=str(web.pk),
        description="Web tier to PostgreSQL",
    )
    for index, (group, host) in enumerate(
        [(web, "compute-1"), (web, "compute-2"), (db, "compute-1"), (db, "compute-3")], start=1
    ):
        network_actions.create_port(
            adam,
            alpha,
            net,
            name=f"{group.name}-{index}",
            host=host,
            security_groups=[str(group.pk)],
            device_owner="compute:nova",
        )
    bnet = network_actions.create_network(adam, bravo, name="analytics-net")
    network_actions.create_subnet(adam, bnet, cidr="198.51.100.0/24")
    network_actions.create_port(adam, bravo, bnet, name="spark-1", host="compute-2")
    return {"alpha": alpha, "bravo": bravo, "web": web, "db": db}


def seed_bulk(project: Project, *, ports: int, rules: int, groups: int = 50) -> None:
    """Many rows at once (benchmark only): `groups` groups sharing `rules` rules, `ports` ports."""
    network = Network.objects.create(project=project, name=f"bulk-{uuid.uuid4().hex[:6]}")
    base = ipaddress.ip_network("100.64.0.0/10")
    subnet = Subnet.objects.create(
        network=network,
        project=project,
        ip_version=4,
        cidr=str(base),
        gateway_ip="100.64.0.1",
        dhcp_servers=["100.64.0.2"],
    )
    hosts = [Host.objects.get_or_create(name=f"bulk-host-{i}")[0] for i in range(10)]
    group_rows = SecurityGroup.objects.bulk_create(
        SecurityGroup(project=project, name=f"bulk-group-{i:03d}", description="bulk")
        for i in range(groups)
    )
    SecurityGroupRule.objects.bulk_create(
        (
            SecurityGroupRule(
                security_group=group_rows[i % groups],
                project=project,
                direction="ingress",
                ethertype="IPv4",
                protocol="tcp",
                port_range_min=1 + i % 60000,
                port_range_max=1 + i % 60000,
                remote_ip_prefix="203.0.113.0/24",
                normalized_cidr="203.0.113.0/24",
            )
            for i in range(rules)
        ),
        batch_size=1000,
    )
    port_rows = Port.objects.bulk_create(
        (
            Port(
                project=project,
                network=network,
                name=f"bulk-port-{i:05d}",
                mac_address=f"fa:16:3e:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                host=hosts[i % len(hosts)],
            )
            for i in range(ports)
        ),
        batch_size=1000,
    )
    FixedIP.objects.bulk_create(
        (
            FixedIP(port=port, subnet=subnet, ip_address=str(base.network_address + 10 + i))
            for i, port in enumerate(port_rows)
        ),
        batch_size=1000,
    )
    PortSecurityGroup.objects.bulk_create(
        (
            PortSecurityGroup(port=port, security_group=group_rows[i % groups], position=0)
            for i, port in enumerate(port_rows)
        ),
        batch_size=1000,
    )
