"""start_trace: validation, resolution, the static verdict at once, the proof dispatched."""

from __future__ import annotations

import pytest

from sgweb import dispatch
from sgweb.tenancy.errors import Invalid, NotFound, PermissionDenied
from sgweb.traces import actions, proof
from sgweb.traces.models import Trace
from sgweb.wire import traces as tp


@pytest.fixture
def alive(monkeypatch) -> list:
    sent: list = []
    monkeypatch.setattr(proof, "agent_alive", lambda host: True)
    monkeypatch.setattr(
        dispatch, "_host_task_sender", lambda host, task, kwargs: sent.append((host, task, kwargs))
    )
    return sent


def test_a_blocked_tcp_connection_is_dropped_by_the_default_drop(
    world, alice, alive, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        trace = actions.start_trace(alice, source="web1", destination=str(world.db.pk),
                                    protocol="tcp", port=5432)  # fmt: skip
    static = trace.static_result
    assert static["type"] == "trace-static" and static["trace_id"] == str(trace.pk)
    assert static["verdict"] == "DROP"
    assert static["reason"] == "default-drop"
    assert "tcp/5432" in static["explanation"]
    assert static["reply"] is None
    assert trace.status == tp.STATUS_RUNNING and trace.mode == tp.MODE_OBSERVE
    assert trace.events[0]["type"] == "trace-static"
    [(host, task, kwargs)] = alive
    assert (host, task) == ("compute1", tp.TASK_PROVE)
    request = tp.ProofRequest.from_dict(kwargs["request"])
    assert (request.protocol, request.dport, request.static_verdict) == ("tcp", 5432, "DROP")
    assert request.src == trace.source_address and request.dst == trace.destination_address


def test_an_allowed_ping_names_the_allowing_rule_and_its_reply(world, alice, alive):
    trace = actions.start_trace(alice, source=str(world.web.pk), destination="db1",
                                protocol="icmp")  # fmt: skip
    static = trace.static_result
    assert static["verdict"] == "ACCEPT"
    assert static["reason"] == "rule"
    assert world.ping_rule_id in str(static["request"])
    assert static["reply"]["verdict"] == "ACCEPT"
    assert trace.icmp_type == 8 and trace.icmp_code == 0


def test_an_outside_address_may_be_the_source(world, alice, alive):
    trace = actions.start_trace(alice, source="198.51.100.7", destination="db1",
                                protocol="tcp", port=22)  # fmt: skip
    assert trace.static_result["verdict"] == "ACCEPT"
    assert trace.host == "compute1" and trace.source_port is None


def test_an_outsider_cannot_trace_from_someone_elses_port(world, charlie, alive):
    with pytest.raises(NotFound):
        actions.start_trace(charlie, source=str(world.web.pk), destination="203.0.113.9",
                            protocol="icmp")  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"source": "", "destination": "db1", "protocol": "icmp"}, "source"),
        ({"source": "web1", "destination": "db1", "protocol": "gre"}, "protocol"),
        ({"source": "web1", "destination": "db1", "protocol": "tcp"}, "port"),
        ({"source": "web1", "destination": "db1", "protocol": "udp", "port": 70000}, "port"),
        ({"source": "web1", "destination": "2001:db8::1", "protocol": "icmp"}, "source"),
        ({"source": "192.0.2.1", "destination": "203.0.113.1", "protocol": "icmp"}, "__all__"),
        ({"source": "web1", "destination": "web1", "protocol": "icmp"}, "destination"),
    ],
)
def test_bad_input_is_refused_field_by_field(world, alice, alive, fields, field):
    with pytest.raises(Invalid) as refused:
        actions.start_trace(alice, **fields)
    assert field in refused.value.errors
    assert not Trace.objects.exists()


def test_an_anonymous_user_cannot_trace(world):
    from django.contrib.auth.models import AnonymousUser

    with pytest.raises(PermissionDenied):
        actions.start_trace(AnonymousUser(), source="web1", destination="db1", protocol="icmp")


def test_a_host_whose_agent_is_down_fails_at_once_and_keeps_the_static_verdict(
    world, alice, monkeypatch
):
    monkeypatch.setattr(proof, "agent_alive", lambda host: False)
    trace = actions.start_trace(alice, source="web1", destination="db1", protocol="icmp")
    assert trace.status == tp.STATUS_FAILED
    assert trace.kernel_result["agrees"] is None
    assert "not running" in trace.kernel_result["summary"]
    assert [e["type"] for e in trace.events] == ["trace-static", "trace-result"]


def test_agent_messages_are_stored_in_order_and_finish_the_trace(world, alice, alive, no_dispatch):
    trace = actions.start_trace(alice, source="web1", destination="db1", protocol="icmp")
    packet = {"type": "trace-packet", "trace_id": str(trace.pk), "index": 0,
              "direction": "request", "host": "compute1", "steps": [],
              "verdict": "ACCEPT"}  # fmt: skip
    actions.record_event(str(trace.pk), packet)
    result = tp.result_message(str(trace.pk), tp.STATUS_DONE, "ACCEPT", "ACCEPT", "agreed")
    actions.record_event(str(trace.pk), result)
    trace.refresh_from_db()
    assert [e["seq"] for e in trace.events] == [0, 1, 2]
    assert trace.status == tp.STATUS_DONE and trace.agrees is True
    assert trace.finished_at is not None
    scopes = [(kind, scope) for kind, _payload, scope in no_dispatch]
    assert scopes[-2:] == [
        ("trace-packet", f"trace:{trace.pk}"),
        ("trace-result", f"trace:{trace.pk}"),
    ]


def test_traces_are_visible_to_the_project_and_readers_not_to_outsiders(world, alice, bob, charlie,
                                                                          rita, alive):  # fmt: skip
    trace = actions.start_trace(alice, source="web1", destination="db1", protocol="icmp")
    assert actions.get_trace(bob, trace.pk) == trace
    assert actions.get_trace(rita, str(trace.pk)) == trace
    with pytest.raises(NotFound):
        actions.get_trace(charlie, trace.pk)
    with pytest.raises(NotFound):
        actions.get_trace(alice, "not-a-uuid")


def test_a_flow_across_hosts_asks_the_destination_host_to_trace_its_hop_first(
    world, alice, adam, project_a, alive, django_capture_on_commit_callbacks
):
    from tests.controlplane import factories

    app = factories.port(adam, project_a, world.web.network, name="app2",
                         security_groups=[str(world.group.id)], host="compute2")  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        trace = actions.start_trace(alice, source="web1", destination="app2", protocol="tcp",
                                    port=5999)  # fmt: skip
    assert trace.static_result["verdict"] == "DROP"
    (hop_host, _t1, hop), (prover_host, _t2, prover) = alive
    assert (hop_host, prover_host) == ("compute2", "compute1") == (app.host.name, trace.host)
    assert hop["request"]["role"] == tp.ROLE_HOP and hop["request"]["prover_host"] == "compute1"
    assert prover["request"]["role"] == tp.ROLE_PROVE
    assert [(h["host"], h["static"], h["traced"]) for h in prover["request"]["hops"]] == [
        ("compute1", "ACCEPT", True),
        ("compute2", "DROP", True),
    ]


def test_a_hop_host_whose_agent_is_down_is_planned_untraced_and_not_asked(
    world, alice, adam, project_a, alive, monkeypatch, django_capture_on_commit_callbacks
):
    from tests.controlplane import factories

    factories.port(adam, project_a, world.web.network, name="app2",
                   security_groups=[str(world.group.id)], host="compute2")  # fmt: skip
    monkeypatch.setattr(proof, "agent_alive", lambda host: host == "compute1")
    with django_capture_on_commit_callbacks(execute=True):
        actions.start_trace(alice, source="web1", destination="app2", protocol="icmp")
    [(host, _task, kwargs)] = alive
    assert host == "compute1"
    planned = kwargs["request"]["hops"][1]
    assert planned == {"host": "compute2", "static": "ACCEPT", "traced": False,
                       "why": "its agent is not running"}  # fmt: skip
