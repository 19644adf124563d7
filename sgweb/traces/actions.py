"""Starting, reading and recording traces: the only writers of `Trace`.

`start_trace` validates and resolves the endpoints, computes the static verdict at once, stores
the trace and (after commit) asks the proving host's agent for the kernel's account.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from sgweb import dispatch
from sgweb.firewall.trace.packet import TraceError
from sgweb.hostsync.compiled import host_target
from sgweb.networks.models import Port
from sgweb.tenancy.access import (
    member_project_ids,
    require_change,
    role_of,
    scope,
    sees_all_projects,
)
from sgweb.tenancy.choices import Role
from sgweb.tenancy.errors import Invalid, NotFound, PermissionDenied
from sgweb.traces.models import Trace, TraceStatus
from sgweb.traces.proof import hop_requests, plan_proof
from sgweb.traces.routed import find_route, routed_static
from sgweb.traces.static import static_message, trace_static
from sgweb.wire import traces as protocol

log = logging.getLogger(__name__)

PROTOCOLS = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "ipv6-icmp": "ipv6-icmp",
             "icmpv6": "ipv6-icmp"}  # fmt: skip
ECHO_REQUEST = {4: 8, 6: 128}


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _resolve(actor: Any, text: str, field: str) -> Port | str:
    """A port the actor may see (by id or exact name), or an address."""
    text = (text or "").strip()
    if not text:
        raise Invalid.from_errors({field: ["Give a port or an IP address."]})
    address = _address(text)
    if address is not None:
        return str(address)
    ports = scope(actor, Port.objects.select_related("host", "network"))
    try:
        return ports.get(pk=uuid.UUID(text))
    except (ValueError, Port.DoesNotExist):
        pass
    named = list(ports.filter(name=text)[:2])
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise Invalid.from_errors({field: [f"Several ports are named {text!r}: give its id."]})
    raise NotFound(f"Port {text} could not be found.", neutron_type="PortNotFound")


def _port_address(port: Port, family: int, field: str) -> str:
    for fixed in port.fixed_ips.all():
        if (address := _address(fixed.ip_address)) and address.version == family:
            return str(address)
    raise Invalid.from_errors({field: [f"Port {port.name or port.pk} has no IPv{family} address."]})


def _family(source: Port | str, destination: Port | str, protocol_name: str) -> int:
    # The addresses are valid: _resolve made them.
    families = {
        ipaddress.ip_address(e).version for e in (source, destination) if isinstance(e, str)
    }
    if len(families) > 1:
        raise Invalid.from_errors({"destination": ["Source and destination mix IPv4 and IPv6."]})
    if families:
        return families.pop()
    return 6 if protocol_name == "ipv6-icmp" else 4


def _clean_protocol(
    protocol_name: str,
    port: int | str | None,
    icmp_type: int | str | None,
    icmp_code: int | str | None,
    family: int,
) -> tuple[str, int | None, int | None, int | None]:
    name = PROTOCOLS.get((protocol_name or "").strip().lower())
    if name is None:
        raise Invalid.from_errors({"protocol": ["Choose tcp, udp or icmp."]})
    if name in ("tcp", "udp"):
        if port is None or port == "":
            raise Invalid.from_errors({"port": [f"A {name} trace needs a destination port."]})
        try:
            number = int(port)
        except (TypeError, ValueError):
            raise Invalid.from_errors({"port": ["The port must be a number."]}) from None
        if not 1 <= number <= 65535:
            raise Invalid.from_errors({"port": ["The port must be between 1 and 65535."]})
        return name, number, None, None
    name = "ipv6-icmp" if family == 6 else "icmp"
    values = []
    for field, value, default in (("icmp_type", icmp_type, ECHO_REQUEST[family]),
                                  ("icmp_code", icmp_code, 0)):  # fmt: skip
        if value is None or value == "":
            values.append(default)
            continue
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise Invalid.from_errors({field: ["Must be a number."]}) from None
        if not 0 <= number <= 255:
            raise Invalid.from_errors({field: ["Must be between 0 and 255."]})
        values.append(number)
    return name, None, values[0], values[1]


def _require_host(port: Port, field: str) -> str:
    if port.host is None:
        raise Invalid.from_errors(
            {field: [f"Port {port.name or port.pk} is not bound to a host: nothing filters it."]}
        )
    return port.host.name


def _require_tracer(actor: Any) -> None:
    role = role_of(actor)
    if not role:
        raise PermissionDenied("Log in to trace packets.")
    if role == Role.READER:
        # A trace sends real packets from a lab VM: readers may look at and share traces but
        # not start them, whatever the endpoints are.
        raise PermissionDenied(
            "Readers may look at traces but not start them.", neutron_type="PolicyNotAuthorized"
        )


def _ends(actor: Any, source: str, destination: str) -> tuple[Port | str, Port | str]:
    """The trace's two ends: at least one a port the actor may change, never the same port."""
    src = _resolve(actor, source, "source")
    dst = _resolve(actor, destination, "destination")
    for end in (src, dst):
        if isinstance(end, Port):
            # Members trace only from/to ports of their own projects (an outside address as the
            # other end is fine); admins anything.
            require_change(
                actor, end.project_id, not_found=f"Port {getattr(end, 'name', '') or end.pk} "
                "could not be found.", neutron_type="PortNotFound",
            )  # fmt: skip
    if isinstance(src, str) and isinstance(dst, str):
        raise Invalid.from_errors({"__all__": ["At least one end of a trace must be a port."]})
    if isinstance(src, Port) and isinstance(dst, Port) and src.pk == dst.pk:
        raise Invalid.from_errors({"destination": ["Source and destination are the same port."]})
    return src, dst


def _static_verdict(
    trace: Trace, src: Port | str, dst: Port | str, route: Any, hosts: list[str]
) -> dict[str, Any]:
    """What the compiled rules say, through the router between two networks when there is
    one (`route`), else on the ends' hosts."""
    if route is not None:
        assert isinstance(src, Port) and isinstance(dst, Port)
        return routed_static(
            str(trace.id), src, dst, route, protocol=trace.protocol, family=trace.family,
            dport=trace.port, icmp_type=trace.icmp_type, icmp_code=trace.icmp_code,
        )  # fmt: skip
    flow = trace_static(
        [host_target(host) for host in dict.fromkeys(hosts)],
        str(src.pk) if isinstance(src, Port) else src,
        str(dst.pk) if isinstance(dst, Port) else dst,
        protocol=trace.protocol,
        family=trace.family,
        dport=trace.port,
        icmp_type=trace.icmp_type,
        icmp_code=trace.icmp_code,
    )
    return static_message(str(trace.id), flow)


def start_trace(
    actor: Any,
    *,
    source: str,
    destination: str,
    protocol: str,
    port: int | str | None = None,  # form fields give strings, the API numbers
    icmp_type: int | str | None = None,
    icmp_code: int | str | None = None,
) -> Trace:
    """Trace a packet from `source` to `destination` (each a port the actor may see, by id or
    name, or an address): the static verdict now, the kernel's proof asynchronously."""

    _require_tracer(actor)
    src, dst = _ends(actor, source, destination)
    family = _family(src, dst, (protocol or "").strip().lower())
    name, dport, itype, icode = _clean_protocol(protocol, port, icmp_type, icmp_code, family)
    hosts = []
    for end, field in ((src, "source"), (dst, "destination")):
        if isinstance(end, Port):
            hosts.append(_require_host(end, field))
    src_address = _port_address(src, family, "source") if isinstance(src, Port) else src
    dst_address = _port_address(dst, family, "destination") if isinstance(dst, Port) else dst
    trace = Trace(
        id=uuid.uuid4(),
        created_by=actor if getattr(actor, "pk", None) else None,
        project_id=(src if isinstance(src, Port) else dst).project_id,  # type: ignore[union-attr]
        source=source.strip(),
        destination=destination.strip(),
        source_port=src if isinstance(src, Port) else None,
        destination_port=dst if isinstance(dst, Port) else None,
        source_address=src_address,
        destination_address=dst_address,
        family=family,
        protocol=name,
        port=dport,
        icmp_type=itype,
        icmp_code=icode,
    )
    # Two ports on different networks: the path crosses the router between them (or nothing).
    both_ports = isinstance(src, Port) and isinstance(dst, Port)
    route = find_route(src, dst, family) if both_ports else None  # type: ignore[arg-type]
    try:
        static = _static_verdict(trace, src, dst, route, hosts)
    except TraceError as exc:
        raise Invalid.from_errors({"__all__": [str(exc)]}) from None
    trace.static_result = static
    trace.events = [{**static, "seq": 0}]

    request, refusal = plan_proof(trace, src, dst, route.host if route is not None else None)
    if request is None:
        trace.host = hosts[0]
        _finish(trace, refusal or {})
    else:
        trace.host, trace.mode = request.host, request.mode
        trace.status = TraceStatus.RUNNING
    trace.save()
    if request is not None:
        transaction.on_commit(lambda: _send_proof(trace.pk, request))
    return trace


def _finish(trace: Trace, result: dict[str, Any]) -> None:
    result = {"seq": len(trace.events), **result}
    trace.kernel_result = result
    trace.status = result.get("status", protocol.STATUS_FAILED)
    trace.finished_at = timezone.now()
    trace.events = [*trace.events, result]


def _send_proof(trace_id: uuid.UUID, request: protocol.ProofRequest) -> None:

    # The other hosts first: the prover waits (bounded) for their "ready" before probing, and a
    # host whose task could not go is reported by the prover as not traced.
    for hop in hop_requests(request):
        dispatch.send_host_task(hop.host, protocol.TASK_PROVE, {"request": hop.to_dict()})
    if dispatch.send_host_task(request.host, protocol.TASK_PROVE, {"request": request.to_dict()}):
        return
    record_event(
        str(trace_id),
        protocol.result_message(
            str(trace_id), protocol.STATUS_FAILED, request.static_verdict, None,
            f"could not reach the agent of host {request.host}",
        ),
    )  # fmt: skip


def visible_traces(actor: Any) -> QuerySet[Trace]:
    if not role_of(actor):
        return Trace.objects.none()
    if sees_all_projects(actor):
        return Trace.objects.all()
    return Trace.objects.filter(Q(project_id__in=member_project_ids(actor)) | Q(created_by=actor))


def get_trace(actor: Any, trace_id: str | uuid.UUID) -> Trace:
    try:
        wanted = uuid.UUID(str(trace_id))
    except ValueError:
        raise NotFound(f"Trace {trace_id} could not be found.") from None
    trace = visible_traces(actor).filter(pk=wanted).first()
    if trace is None:
        raise NotFound(f"Trace {trace_id} could not be found.")
    return trace


def record_event(trace_id: str, message: dict[str, Any]) -> None:
    """Store one message of the agent's on its trace, then forward it to the trace's watchers.

    Messages are numbered (`seq`) so a watcher that joined while replaying can drop doubles."""
    with transaction.atomic():
        trace = Trace.objects.select_for_update().filter(pk=trace_id).first()
        if trace is None:
            log.info("event for unknown trace %s ignored", trace_id)
            return
        message = {**message, "trace_id": str(trace.pk), "seq": len(trace.events)}
        if message.get("type") == "trace-result":
            _finish(trace, message)
        else:
            trace.events = [*trace.events, message]
        trace.save(update_fields=["events", "kernel_result", "status", "finished_at"])
    kind = dispatch.EventKind(str(message.get("type")))  # trace-packet or trace-result
    dispatch.send_event(kind, message, scope=f"trace:{trace.pk}")
