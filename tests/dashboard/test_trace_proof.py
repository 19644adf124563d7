"""A trace's page says "proven on HOST" only once the kernel gave its verdict there (issue 14):
while the agent works it is "being proven", and a trace whose agent was missing, unreachable
or timed out says it was not proven, never "proven on … by …"."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from sgweb import dispatch
from sgweb.dashboard.tracepaint import proof_line
from sgweb.traces import actions, proof
from sgweb.traces.models import Trace
from sgweb.wire import traces as tp
from tests.dashboard.conftest import World

pytestmark = pytest.mark.django_db


def subtitle(client: Client, trace: Trace) -> str:
    html = client.get(f"/traces/{trace.pk}").content.decode()
    line = re.search(r'<span data-trace-proof data-state="([^"]*)">(.*?)</span>', html, re.S)
    assert line, "the page has its proof line"
    return f"{line.group(1)}|{re.sub(r'<[^>]+>', '', line.group(2))}"


def start(client: Client, world: World) -> Trace:
    response = client.post(
        "/traces",
        {"source_kind": "address", "source_address": "203.0.113.9", "destination_kind": "port",
         "destination_port": str(world.port_a.pk), "protocol": "tcp", "port": "22"},
    )  # fmt: skip
    assert response.status_code == 302
    return Trace.objects.get()


@pytest.fixture
def agent_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proof, "agent_alive", lambda host: True)
    monkeypatch.setattr(dispatch, "_host_task_sender", lambda host, task, kwargs: None)


def result(trace: Trace, status: str, kernel: str | None, summary: str) -> dict[str, Any]:
    return tp.result_message(str(trace.pk), status, trace.static_verdict, kernel, summary)


def test_a_host_without_an_agent_is_never_said_to_have_proven_it(
    world: World, as_alice: Client
) -> None:
    trace = start(as_alice, world)
    assert trace.finished
    line = subtitle(as_alice, trace)
    assert line == "not-proven| · not proven in the kernel on compute-1 (it has no running agent)"
    assert "proven on" not in line


def test_a_running_proof_is_being_proven_and_a_finished_one_proven(
    world: World, as_alice: Client, agent_alive: None
) -> None:
    trace = start(as_alice, world)
    assert subtitle(as_alice, trace) == (
        "proving| · being proven on compute-1 by watching real traffic"
    )
    actions.record_event(str(trace.pk), result(trace, tp.STATUS_OBSERVED, "ACCEPT", "seen"))
    trace.refresh_from_db()
    assert subtitle(as_alice, trace) == "proven| · proven on compute-1 by watching real traffic"


@pytest.mark.parametrize(
    ("status", "summary"),
    [
        (tp.STATUS_FAILED, "could not reach the agent of host compute-1"),
        (tp.STATUS_TIMEOUT, "the agent saw no packet in 10 s"),
    ],
)
def test_a_proof_that_failed_or_timed_out_says_it_was_not_proven(
    world: World, as_alice: Client, agent_alive: None, status: str, summary: str
) -> None:
    trace = start(as_alice, world)
    actions.record_event(str(trace.pk), result(trace, status, None, summary))
    trace.refresh_from_db()
    line = subtitle(as_alice, trace)
    assert line == "not-proven| · not proven in the kernel on compute-1"
    assert "proven on" not in line


def test_the_proof_line_says_nothing_without_a_host() -> None:
    assert proof_line(None, "probe", True, None).state == ""
    assert proof_line("h1", "probe", False, None).how == "sending real packets"
