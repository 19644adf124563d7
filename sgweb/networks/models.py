"""Compute hosts, networks, subnets and ports (VM NICs) with their addresses."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, models, transaction

from sgweb.networks.choices import AGENT_SILENT, HostStatus, IpVersion, PortStatus
from sgweb.tenancy.models import Project
from sgweb.tenancy.standard import StandardAttributes

try:
    from sgweb.firewall.names import device_name as _device_name
except ImportError:  # the firewall package's naming module may not exist yet

    def _device_name(port_id: str) -> str:
        return "tap" + port_id[:11]


class Host(models.Model):
    """A compute host and what its agent last reported."""

    name = models.CharField(max_length=255, unique=True)
    description = models.CharField(max_length=255, blank=True, default="")
    # Lab hosts are network namespaces on this machine; real hosts have none.
    netns = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 (none: not a lab host)
    # A network node also runs routers (their namespaces, with the firewall groups on their
    # interfaces); its agent is the same worker.
    network_node = models.BooleanField(default=False)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    desired_revision = models.PositiveBigIntegerField(default=0)
    applied_revision = models.PositiveBigIntegerField(default=0)
    # Content, not numbers: the digest of the state last published for this host, and of the
    # state its agent says it applied; the reconciler compares both with the database.
    desired_digest = models.CharField(max_length=64, blank=True, default="")
    applied_digest = models.CharField(max_length=64, blank=True, default="")
    last_apply_at = models.DateTimeField(null=True, blank=True)
    last_apply_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=HostStatus.choices, default=HostStatus.UNKNOWN)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Network(StandardAttributes):
    """A tenant network: one Linux bridge per compute host, with its subnets."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="networks")
    name = models.CharField(max_length=255, blank=True, default="")
    description = models.CharField(max_length=255, blank=True, default="")
    admin_state_up = models.BooleanField(default=True)
    shared = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name or str(self.id)


class Subnet(StandardAttributes):
    """An address range of a network: gateway, DHCP servers and allocation pools."""

    network = models.ForeignKey(Network, on_delete=models.CASCADE, related_name="subnets")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="subnets")
    name = models.CharField(max_length=255, blank=True, default="")
    description = models.CharField(max_length=255, blank=True, default="")
    ip_version = models.PositiveSmallIntegerField(choices=IpVersion.choices)
    cidr = models.CharField(max_length=64)  # normalised network, e.g. "192.0.2.0/24"
    gateway_ip = models.GenericIPAddressField(null=True, blank=True)
    enable_dhcp = models.BooleanField(default=True)
    # The DHCP servers' addresses; the i-chain accepts DHCP replies only from them.
    dhcp_servers = models.JSONField(default=list, blank=True)
    # [{"start": ip, "end": ip}, ...]; empty means the whole subnet.
    allocation_pools = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name or self.id} ({self.cidr})"


def port_device(port_id: str) -> str:
    """`Port.device` from the port's id."""
    return _device_name(port_id)


def port_status(
    admin_state_up: bool,
    host_revision: int | None,
    host_status: str | None,
    applied_revision: int | None,
) -> str:
    """`Port.status` from plain values (lists read ports as rows; host fields None: unbound)."""
    if not admin_state_up or host_status is None or host_revision is None:
        return PortStatus.DOWN
    if host_status in AGENT_SILENT or (applied_revision or 0) < host_revision:
        return PortStatus.DOWN
    return PortStatus.ACTIVE


class Port(StandardAttributes):
    """A VM's NIC: its addresses, host binding, security groups and address pairs."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="ports")
    network = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="ports")
    name = models.CharField(max_length=255, blank=True, default="")
    description = models.CharField(max_length=255, blank=True, default="")
    mac_address = models.CharField(max_length=17)
    # Neutron's binding:host_id.
    host = models.ForeignKey(
        Host, on_delete=models.SET_NULL, null=True, blank=True, related_name="ports"
    )
    device_owner = models.CharField(max_length=255, blank=True, default="")
    device_id = models.CharField(max_length=255, blank=True, default="")
    admin_state_up = models.BooleanField(default=True)
    port_security_enabled = models.BooleanField(default=True)
    # The port's own conntrack zone on its host (Neutron's hybrid driver: one zone per port),
    # fixed at creation and unique across hosts, so it survives a move: numbered by the compiler
    # instead, zones would shift when another port arrives and live connections would lose
    # their state.
    conntrack_zone = models.PositiveIntegerField(null=True, blank=True, unique=True, editable=False)
    # The first revision of its host's desired state that carries the port as it is now; None
    # until that state is published (every change of the port sets None again). The port is
    # ACTIVE once its host's agent reports it applied this revision.
    host_revision = models.PositiveBigIntegerField(null=True, blank=True, default=None)
    security_groups = models.ManyToManyField(
        "security.SecurityGroup",
        through="PortSecurityGroup",
        related_name="ports",
        blank=True,
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["network", "mac_address"], name="port_mac_per_network")
        ]
        # A project's page of ports in id order (the API's default) without sorting them all.
        indexes = [models.Index(fields=["project", "id"], name="port_project_page")]

    def __str__(self) -> str:
        return self.name or str(self.id)

    @property
    def status(self) -> str:
        """Neutron's port status: ACTIVE when the port is up, bound, and its host's agent
        (alive) applied the state that carries the port as it is now; DOWN otherwise."""
        host = self.host
        if host is None:
            return PortStatus.DOWN
        return port_status(
            self.admin_state_up, self.host_revision, host.status, host.applied_revision
        )

    @property
    def device(self) -> str:
        return port_device(str(self.id))

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.conntrack_zone is not None:
            super().save(*args, **kwargs)
            return
        manager = type(self).objects
        for attempt in range(ZONE_ATTEMPTS):
            self.conntrack_zone = next_conntrack_zone(manager)
            try:
                with transaction.atomic():  # a savepoint, so a lost race can be retried
                    super().save(*args, **kwargs)
                return
            except IntegrityError:
                taken = manager.filter(conntrack_zone=self.conntrack_zone).exclude(pk=self.pk)
                last = attempt + 1 == ZONE_ATTEMPTS
                if self.conntrack_zone is None or last or not taken.exists():
                    raise  # another constraint, or too many races

    def ordered_security_group_ids(self) -> list[str]:
        """The port's group ids in the order they were given (uses a prefetch when present)."""
        links = sorted(self.group_links.all(), key=lambda link: link.position)
        return [str(link.security_group_id) for link in links]


FIRST_CONNTRACK_ZONE = 4097  # as Neutron; zones below are left to the host's own use
LAST_CONNTRACK_ZONE = 65535  # CT zones are 16 bits
ZONE_ATTEMPTS = 5  # concurrent creations may pick the same zone; the unique index decides


def next_conntrack_zone(ports: models.Manager[Port]) -> int | None:
    """The next zone after the highest in use, or the lowest free one once the top is reached;
    None when all are taken (the compiler then numbers the port on its host)."""
    highest = ports.aggregate(models.Max("conntrack_zone"))["conntrack_zone__max"]
    if highest is None or highest < LAST_CONNTRACK_ZONE:
        return FIRST_CONNTRACK_ZONE if highest is None else max(highest + 1, FIRST_CONNTRACK_ZONE)
    used = set(ports.filter(conntrack_zone__isnull=False).values_list("conntrack_zone", flat=True))
    for zone in range(FIRST_CONNTRACK_ZONE, LAST_CONNTRACK_ZONE + 1):
        if zone not in used:
            return zone
    return None


class PortSecurityGroup(models.Model):
    """The link between a port and a group; `position` keeps the order the client gave."""

    port = models.ForeignKey(Port, on_delete=models.CASCADE, related_name="group_links")
    security_group = models.ForeignKey(
        "security.SecurityGroup", on_delete=models.PROTECT, related_name="port_links"
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["port", "security_group"], name="port_group_unique")
        ]

    def __str__(self) -> str:
        return f"{self.port_id} uses {self.security_group_id}"


class FixedIP(models.Model):
    """One address of a port on one of its network's subnets."""

    port = models.ForeignKey(Port, on_delete=models.CASCADE, related_name="fixed_ips")
    subnet = models.ForeignKey(Subnet, on_delete=models.PROTECT, related_name="fixed_ips")
    ip_address = models.GenericIPAddressField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["subnet", "ip_address"], name="fixed_ip_per_subnet")
        ]

    def __str__(self) -> str:
        return self.ip_address


class AllowedAddressPair(models.Model):
    """An extra address (or CIDR) and MAC a port may send from."""

    port = models.ForeignKey(Port, on_delete=models.CASCADE, related_name="allowed_address_pairs")
    ip_address = models.CharField(max_length=64)  # an address or a CIDR
    mac_address = models.CharField(max_length=17)  # the port's own MAC when not given

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["port", "ip_address", "mac_address"], name="address_pair_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.ip_address} from {self.mac_address}"
