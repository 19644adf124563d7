"""The control plane stores agents' flow batches once per flow, explained, and says so live."""

from __future__ import annotations

import pytest
from django.test import override_settings

from sgweb.droplog import actions
from sgweb.droplog.models import DropFlow, HostDropLog
from sgweb.droplog.tasks import record_flows
from sgweb.wire.packetlog import FlowBatchError
from tests.droplog.batches import RUN, blocked_ping, blocked_ssh

pytestmark = pytest.mark.django_db


def test_a_blocked_connect_is_stored_once_with_its_counts_and_times(world, agent):
    recorded = actions.record(agent.batch(blocked_ssh(world.web)))
    assert (recorded.flows, recorded.new) == (1, 1)
    row = DropFlow.objects.get()
    assert (row.port_id, row.project_id) == (world.web.pk, world.web.project_id)
    assert (row.direction, row.event, row.protocol, row.src, row.dst_port, row.count) == (
        "ingress", "DROP", 6, "203.0.113.9", 22, 3,
    )  # fmt: skip
    assert row.first_seen.timestamp() == RUN + 10 and row.last_seen.timestamp() == RUN + 11


def test_a_drop_is_explained_in_security_group_words_with_the_nearest_rule(world, agent):
    actions.record(agent.batch(blocked_ssh(world.web)))
    row = DropFlow.objects.get()
    assert row.explanation.startswith(
        "dropped at port web1 ingress by the default drop: no rule of group web allows "
        "tcp/22 from 203.0.113.9; nearest rule"
    ), row.explanation
    assert "198.51.100.0/24" in row.explanation and "differs in" in row.explanation
    assert (row.verdict, row.reason) == ("DROP", "default-drop")
    assert row.nearest_rule_id == world.ssh_rule_id
    assert row.group_ids == [str(world.group.pk)]


def test_a_ping_to_a_group_without_ingress_rules_says_it_has_none(world, agent, bravo_port):
    actions.record(agent.batch(blocked_ping(bravo_port)))
    row = DropFlow.objects.get()
    assert "no rule of group bravo-web allows" in row.explanation
    assert row.explanation.endswith("it has no ingress IPv4 rule at all"), row.explanation


def test_an_open_flow_reported_again_adds_only_what_grew(world, agent):
    actions.record(agent.batch(blocked_ssh(world.web, count=3)))
    actions.record(agent.batch(blocked_ssh(world.web, count=5, last_seen=RUN + 14)))
    actions.record(agent.batch(blocked_ssh(world.web, count=5, last_seen=RUN + 14)))
    row = DropFlow.objects.get()
    assert row.count == 5 and row.last_seen.timestamp() == RUN + 14


def test_a_flow_that_comes_back_after_its_window_adds_its_whole_count(world, agent):
    actions.record(agent.batch(blocked_ssh(world.web, count=3)))
    later = blocked_ssh(world.web, count=2, first_seen=RUN + 60, last_seen=RUN + 61)
    actions.record(agent.batch(later))
    row = DropFlow.objects.get()
    assert row.count == 5
    assert row.first_seen.timestamp() == RUN + 10 and row.last_seen.timestamp() == RUN + 61


def test_each_source_port_is_its_own_flow_but_explained_alike(world, agent):
    actions.record(agent.batch(blocked_ssh(world.web, sport=40001), blocked_ssh(world.web)))
    texts = set(DropFlow.objects.values_list("explanation", flat=True))
    assert DropFlow.objects.count() == 2 and len(texts) == 1


def test_what_the_agent_shed_is_counted_once_per_batch(world, agent):
    batch = agent.batch(blocked_ssh(world.web), shed=120)
    actions.record(batch)
    assert actions.record(batch).stale  # delivered twice
    state = HostDropLog.objects.get(host="compute1")
    assert (state.shed, state.batches, state.stale_batches) == (120, 2, 1)
    assert DropFlow.objects.get().count == 3


def test_a_malformed_batch_is_refused_whole_and_changes_nothing(world, agent):
    batch = agent.batch(blocked_ssh(world.web))
    batch["flows"].append({"port_id": str(world.web.pk), "direction": "sideways"})
    with pytest.raises(FlowBatchError):
        actions.record(batch)
    record_flows(batch=batch)  # the task logs it and carries on
    assert not DropFlow.objects.exists() and not HostDropLog.objects.exists()


def test_the_task_takes_the_batch_by_keyword_or_alone(world, agent):
    record_flows(batch=agent.batch(blocked_ssh(world.web)))
    record_flows(agent.batch(blocked_ssh(world.web, sport=40001)))
    assert DropFlow.objects.count() == 2


def test_flows_of_unknown_ports_are_counted_not_stored(world, agent):
    ghost = blocked_ssh(world.web, port_id="00000000-0000-4000-8000-000000000000")
    assert actions.record(agent.batch(ghost)).unknown_ports == 1
    assert not DropFlow.objects.exists()
    assert HostDropLog.objects.get().unknown_ports == 1


def test_new_and_grown_flows_go_live_to_their_own_project_only(
    world, agent, bravo_port, no_dispatch, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        actions.record(agent.batch(blocked_ssh(world.web), blocked_ping(bravo_port)))
    sent = [(kind, scope, [f["port_id"] for f in payload["flows"]])
            for kind, payload, scope in no_dispatch]  # fmt: skip
    assert sorted(sent) == sorted([
        ("drop-flows", f"project:{world.web.project_id.hex}", [str(world.web.pk)]),
        ("drop-flows", f"project:{bravo_port.project_id.hex}", [str(bravo_port.pk)]),
    ])  # fmt: skip


def test_retention_drops_the_oldest_flows_first(world, agent):
    for n in range(5):
        actions.record(agent.batch(blocked_ssh(world.web, sport=41000 + n,
                                               last_seen=RUN + 11 + n)))  # fmt: skip
    with override_settings(SGWEB_PACKET_LOG_MAX_FLOWS=3):
        assert actions.prune(now=RUN + 100) == 2
    assert sorted(DropFlow.objects.values_list("src_port", flat=True)) == [41002, 41003, 41004]
    with override_settings(SGWEB_PACKET_LOG_RETENTION=60):
        assert actions.prune(now=RUN + 74) == 1  # last seen RUN+13 is older than a minute


def test_a_flow_the_tracer_cannot_explain_is_kept_all_the_same(world, agent, monkeypatch):
    from sgweb.droplog import explain

    def broken(target, flow):
        raise RuntimeError("tracer bug")

    monkeypatch.setattr(explain, "explain_flow", broken)
    actions.explanations.forget()
    actions.record(agent.batch(blocked_ssh(world.web)))
    row = DropFlow.objects.get()
    assert row.count == 3 and row.explanation == "could not explain the flow: tracer bug"
    actions.explanations.forget()
