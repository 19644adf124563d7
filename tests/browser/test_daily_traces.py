"""Traces that read along the packet's path, in a real browser at 1440 and 800 px (issue 14).

A kept trace from a port on `host2` to a port on `host1` (so the path runs against the hosts'
alphabetical order), with the kernel's packets recorded in the order agents might send them
(host1's first): the page lists them along the path, request then reply, words each rule as the
static walk does, says the result in one sentence and "proven on" only where it was. A trace to
a host without an agent never says "proven on … by"; the traces list keeps its verdicts in view.

Against pytest-django's live server: the agents' messages go through `record_event`, as the
control worker stores them (the kernel side of traces is proven in test_live_lab.py)."""

from __future__ import annotations

from typing import Any

import pytest

from sgweb import dispatch
from sgweb.networks import actions as network_actions
from sgweb.networks.models import Port
from sgweb.security import actions as security_actions
from sgweb.security.models import SecurityGroupRule
from sgweb.traces import actions as trace_actions
from sgweb.traces import proof
from sgweb.traces.models import Trace
from sgweb.wire import traces as tp
from tests.browser.conftest import WIDTHS
from tests.browser.test_daily_pages import fits
from tests.browser.test_dashboard_flow import log_in
from tests.personas import Personas

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _port(personas: Personas, network: Any, name: str, host: str, group: Any) -> Port:
    return network_actions.create_port(
        personas.adam, personas.project_a, network, name=name, host=host,
        security_groups=[str(group.pk)],
    )  # fmt: skip


def _packet(
    trace: Trace, host: str, direction: str, rule: SecurityGroupRule | None
) -> dict[str, Any]:
    """A kernel packet as worker/tracing.py describes it: the agent's own label for the rule."""
    steps = [{"table": "filter", "chain": "neutron-openvswi-sg-chain", "position": 1,
              "event": "rule", "verdict": "JUMP:neutron-openvswi-i0", "label": "jump",
              "rule_id": None}]  # fmt: skip
    if rule is not None:
        steps.append({"table": "filter", "chain": "neutron-openvswi-i0", "position": 5,
                      "event": "rule", "verdict": "RETURN", "label": "agent's own words",
                      "rule_id": str(rule.pk)})  # fmt: skip
    return {"type": "trace-packet", "trace_id": str(trace.pk), "host": host, "index": 0,
            "direction": direction, "verdict": "ACCEPT", "steps": steps}  # fmt: skip


@pytest.fixture
def crossing(personas: Personas, monkeypatch: pytest.MonkeyPatch) -> tuple[Trace, str]:
    """A finished trace web-b (host2) -> web-a (host1), tcp/22, proven by watching traffic."""
    alice = personas.alice
    network = network_actions.create_network(alice, personas.project_a, name="path-net")
    network_actions.create_subnet(alice, network, cidr="192.0.2.0/24")
    group = security_actions.create_security_group(alice, personas.project_a, name="web")
    rule = security_actions.create_security_group_rule(
        alice, group, direction="ingress", protocol="tcp", port_range_min=22,
        port_range_max=22, remote_ip_prefix="192.0.2.0/24",
    )  # fmt: skip
    dst = _port(personas, network, "web-a", "host1", group)
    src = _port(personas, network, "web-b", "host2", group)
    monkeypatch.setattr(proof, "agent_alive", lambda host: True)
    monkeypatch.setattr(dispatch, "_host_task_sender", lambda host, task, kwargs: None)
    trace = trace_actions.start_trace(
        alice, source=str(src.pk), destination=str(dst.pk), protocol="tcp", port=22
    )
    # Agents report as they go: host1 (the destination) happens to be heard first.
    heard = [("host1", "request", rule), ("host2", "request", None),
             ("host2", "reply", None), ("host1", "reply", None)]  # fmt: skip
    for host, direction, matched in heard:
        trace_actions.record_event(str(trace.pk), _packet(trace, host, direction, matched))
    result = tp.result_message(str(trace.pk), tp.STATUS_OBSERVED, "ACCEPT", "ACCEPT", "seen")
    trace_actions.record_event(str(trace.pk), {**result, "decided_by": "host1"})
    return trace, str(rule.pk)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_kept_trace_reads_along_the_packets_path(
    page: Any, live_server: Any, crossing: tuple[Trace, str], screenshot: Any, width: int
) -> None:
    trace, rule_id = crossing
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/traces/{trace.pk}")
    # Along the path: the request leaves host2 and arrives at host1; the reply comes back.
    heads = page.locator("[data-trace-packets] .packet summary").all_inner_texts()
    order = [(h.split()[1], h.split()[2]) for h in heads]
    assert order == [("request", "host2"), ("request", "host1"),
                     ("reply", "host1"), ("reply", "host2")]  # fmt: skip
    # Each host's part of the static walk is in the same order.
    static_hosts = page.locator(
        "section[aria-labelledby='static-heading'] .hop-head .mono"
    ).all_inner_texts()
    assert static_hosts[:2] == ["host2", "host1"]
    # One wording per rule: the kernel's step reads as the static walk's, not the agent's.
    static_words = page.locator(
        f"section[aria-labelledby='static-heading'] .trace-step[data-rule-id='{rule_id}'] .words"
    ).first.inner_text()
    kernel_words = page.locator(
        f"[data-trace-packets] .trace-step[data-rule-id='{rule_id}'] .words"
    ).first.inner_text()
    assert kernel_words == static_words and "agent's own words" not in kernel_words
    # The result is one sentence, and the proof line says where it was proven.
    sentence = page.locator("[data-result-sentence]").inner_text()
    assert sentence.startswith("The kernel agreed: host1 allowed the packet at “allow tcp/22")
    assert sentence.count(". ") == 0 and sentence.endswith(".")
    proof_line = page.locator("[data-trace-proof]").inner_text()
    assert "proven on host2 by watching real traffic" in proof_line
    assert fits(page, "[data-result-sentence]")
    screenshot("daily-20-trace-along-the-path")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_trace_to_a_host_without_an_agent_never_says_proven_and_the_list_keeps_verdicts(
    page: Any, live_server: Any, personas: Personas, screenshot: Any, width: int
) -> None:
    alice = personas.alice
    network = network_actions.create_network(alice, personas.project_a, name="lonely-net")
    network_actions.create_subnet(alice, network, cidr="198.51.100.0/24")
    group = security_actions.create_security_group(alice, personas.project_a, name="lonely")
    port = _port(personas, network, "lonely-server-with-a-long-name", "compute1", group)
    trace = trace_actions.start_trace(
        alice, source="203.0.113.9", destination=str(port.pk), protocol="tcp", port=22
    )
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/traces/{trace.pk}")
    header = page.locator(".page-header").inner_text()
    assert "proven on" not in header and "by —" not in header
    assert "not proven in the kernel on compute1 (it has no running agent)" in header
    sentence = page.locator("[data-result-sentence]").inner_text()
    assert sentence.startswith("Not proven in the kernel: the agent of host compute1")
    screenshot("daily-21-trace-no-agent")
    # The list keeps each trace's verdict in view, even at 800 px, and while it scrolls sideways.
    page.goto(f"{live_server.url}/traces")
    assert fits(page, "table[data-table='traces'] tbody tr td[data-verdict] .pill")
    page.locator(".table-wrap").first.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    assert fits(page, "table[data-table='traces'] tbody tr td[data-verdict] .pill")
    screenshot("daily-22-traces-list")
