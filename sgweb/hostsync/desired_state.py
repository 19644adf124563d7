"""The one adapter from ORM objects to the firewall compiler's input, `HostState`.

A fixed number of queries whatever the number of ports, groups, rules or members: the host's
ports with their addresses and links, the groups they use with their rules, the remote groups
those rules name, and the members of those remote groups.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Prefetch

from sgweb.firewall import model
from sgweb.networks.models import AllowedAddressPair, FixedIP, Host, Port, PortSecurityGroup, Subnet
from sgweb.packetlogs.coverage import port_log_events
from sgweb.security.models import SecurityGroup, SecurityGroupRule
from sgweb.security.validators import neutron_protocol_for_kernel


def _rule(rule: SecurityGroupRule) -> model.SecurityGroupRule:
    return model.SecurityGroupRule(
        id=str(rule.id),
        direction=rule.direction,
        ethertype=rule.ethertype,
        protocol=neutron_protocol_for_kernel(rule.protocol),
        port_range_min=rule.port_range_min,
        port_range_max=rule.port_range_max,
        remote_ip_prefix=rule.normalized_cidr,
        remote_group_id=str(rule.remote_group_id) if rule.remote_group_id else None,
    )


def _group(group: SecurityGroup) -> model.SecurityGroup:
    rules = sorted(group.rules.all(), key=lambda rule: str(rule.id))
    return model.SecurityGroup(
        id=str(group.id),
        name=group.name,
        stateful=group.stateful,
        rules=tuple(_rule(rule) for rule in rules),
    )


def _load_groups(ids: Iterable[str]) -> list[SecurityGroup]:
    wanted = sorted(set(ids))
    if not wanted:
        return []
    return list(
        SecurityGroup.objects.filter(id__in=wanted).order_by("id").prefetch_related("rules")
    )


def _members(group_ids: Iterable[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """group id -> fixed IPs and allowed-address-pair IPs of its ports, on any host.

    Two queries (fixed IPs, address pairs), each joining the group links straight to the
    addresses by port id: a group of 50,000 ports costs the database's join and little else.
    Through the ORM the same read also joined the ports table, built a UUID object per row,
    sorted the rows by the links' ordering, and (for the pairs) sent a NULL row per port
    without pairs: about half a second at 10,000 members, most of a publish's time."""
    ids = sorted(set(group_ids))
    if not ids:
        return ()
    addresses: dict[str, set[str]] = {str(uuid.UUID(str(gid))): set() for gid in ids}
    named: dict[object, str] = {}  # the database's value of an id (hex on SQLite) -> ours
    with connection.cursor() as cursor:
        for table in (FixedIP, AllowedAddressPair):
            sql, values = _member_query(table, ids)
            cursor.execute(sql, values)
            for raw, address in cursor.fetchall():
                gid = named.get(raw)
                if gid is None:
                    gid = named[raw] = str(uuid.UUID(str(raw)))
                if address:
                    addresses[gid].add(address)
    return tuple((gid, tuple(sorted(addresses[str(uuid.UUID(str(gid)))]))) for gid in ids)


def _member_query(
    table: type[FixedIP] | type[AllowedAddressPair], ids: list[str]
) -> tuple[str, list[Any]]:
    """The group links joined to `table`'s addresses by port id (see `_members`)."""
    quote = connection.ops.quote_name
    links = PortSecurityGroup._meta
    group = links.get_field("security_group")
    column = {
        "group": quote(str(group.column)),
        "link_port": quote(str(links.get_field("port").column)),
        "address": quote(str(table._meta.get_field("ip_address").column)),
        "port": quote(str(table._meta.get_field("port").column)),
    }
    values = [group.target_field.get_db_prep_value(gid, connection) for gid in ids]
    sql = (
        f"SELECT l.{column['group']}, a.{column['address']}"
        f" FROM {quote(table._meta.db_table)} a JOIN {quote(links.db_table)} l"
        f" ON l.{column['link_port']} = a.{column['port']}"
        f" WHERE l.{column['group']} IN ({', '.join(['%s'] * len(values))})"
    )
    return sql, values


class SharedParts:
    """Groups and remote-group members read once for many hosts (one publish of a change).

    A change to a group used on a hundred hosts used to read and encode the group and its remote
    groups' members once per host; a publisher building all of them shares one of these. Its
    reads are as fresh as the first host that needed them: the publisher takes every host's
    revision before it builds any (see `sgweb.hostsync.fanout`).
    """

    def __init__(self) -> None:
        self.groups: dict[str, model.SecurityGroup] = {}
        self.members: dict[str, tuple[str, ...]] = {}
        self._absent: set[str] = set()  # asked for and not there (a deleted remote group)

    def load_groups(self, ids: Iterable[str]) -> None:
        wanted = set(ids) - set(self.groups) - self._absent
        for group in _load_groups(wanted):
            self.groups[str(group.id)] = _group(group)
        self._absent |= wanted - set(self.groups)

    def load_members(self, ids: Iterable[str]) -> None:
        wanted = set(ids) - set(self.members)
        self.members.update(_members(wanted))

    def closure(self, used: Iterable[str]) -> tuple[list[str], list[str]]:
        """(every group a host using `used` needs, the remote groups among their rules)."""
        used = set(used)
        self.load_groups(used)
        remote = {
            rule.remote_group_id
            for gid in used
            if gid in self.groups
            for rule in self.groups[gid].rules
            if rule.remote_group_id
        }
        self.load_groups(remote)
        self.load_members(remote)
        present = sorted(gid for gid in used | remote if gid in self.groups)
        return present, sorted(remote)

    def preload(self, used: Iterable[str]) -> None:
        """Read what many hosts need in a fixed number of queries, before building them."""
        self.closure(used)


def host_ports(host_name: str) -> tuple[model.Port, ...]:
    """The host's own ports, as the compiler takes them (a fixed number of queries)."""
    ports = list(
        Port.objects.filter(host__name=host_name)
        .order_by("id")
        .prefetch_related(
            "fixed_ips",
            "allowed_address_pairs",
            "group_links",
            Prefetch(
                "network__subnets",
                queryset=Subnet.objects.order_by("created_at", "id").only(
                    "id", "network_id", "enable_dhcp", "dhcp_servers"
                ),
            ),
        )
    )
    port_states: list[model.Port] = []
    groups_of = {str(port.id): tuple(port.ordered_security_group_ids()) for port in ports}
    log_events = port_log_events(ports, groups_of)
    for port in ports:
        group_ids = groups_of[str(port.id)]
        dhcp_servers: list[str] = []
        for subnet in port.network.subnets.all():
            if subnet.enable_dhcp:
                dhcp_servers.extend(s for s in subnet.dhcp_servers if s not in dhcp_servers)
        port_states.append(
            model.Port(
                id=str(port.id),
                mac_address=port.mac_address,
                fixed_ips=tuple(fixed.ip_address for fixed in port.fixed_ips.all()),
                security_groups=group_ids,
                allowed_address_pairs=tuple(
                    model.AddressPair(ip_address=pair.ip_address, mac_address=pair.mac_address)
                    for pair in port.allowed_address_pairs.all()
                ),
                port_security_enabled=port.port_security_enabled,
                dhcp_servers=tuple(dhcp_servers),
                host=host_name,
                device=port.device,
                network_id=str(port.network_id),
                name=port.name,
                conntrack_zone=port.conntrack_zone,
                log_events=log_events.get(str(port.id)),
            )
        )
    return tuple(port_states)


def host_scalars(host_name: str) -> dict[str, object]:
    """Every HostState field a host's ports and groups do not decide: from the settings."""
    return {
        "enable_ipset": settings.FIREWALL_ENABLE_IPSET,
        "chain_prefix": settings.FIREWALL_CHAIN_PREFIX,
        "host": host_name,
        "compat": settings.SGWEB_FIREWALL_COMPAT,
        "log_settings": model.LogSettings(
            rate=settings.PACKET_LOG_RATE,
            burst=settings.PACKET_LOG_BURST,
            nflog_group_v4=settings.PACKET_LOG_NFLOG_GROUP_V4,
            nflog_group_v6=settings.PACKET_LOG_NFLOG_GROUP_V6,
        ),
    }


def host_state(
    host: Host | str,
    *,
    chain_prefix: str | None = None,
    enable_ipset: bool | None = None,
    shared: SharedParts | None = None,
) -> model.HostState:
    host_name = host.name if isinstance(host, Host) else host
    ports = host_ports(host_name)
    shared = shared or SharedParts()
    present, remote = shared.closure(gid for port in ports for gid in port.security_groups)
    scalars = host_scalars(host_name)
    if chain_prefix:
        scalars["chain_prefix"] = chain_prefix
    if enable_ipset is not None:
        scalars["enable_ipset"] = enable_ipset
    return model.HostState(
        ports=ports,
        security_groups=tuple(shared.groups[gid] for gid in present),
        remote_group_members=tuple((gid, shared.members.get(gid, ())) for gid in remote),
        **scalars,  # type: ignore[arg-type]
    )
