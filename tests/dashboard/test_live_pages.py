"""The issue-5 pages without a browser: first paints of the live sections, the trace pages, and
who may see and run what (members and admins run traces, readers only look, outsiders get 404)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from sgweb.dashboard import livepaint
from sgweb.traces.models import Trace
from tests.dashboard.conftest import World, client_for

pytestmark = pytest.mark.django_db


def _start(client: Client, world: World, port: int = 22) -> Any:
    response = client.post(
        "/traces",
        {
            "source_kind": "address",
            "source_address": "203.0.113.9",
            "destination_kind": "port",
            "destination_port": str(world.port_a.pk),
            "protocol": "tcp",
            "port": str(port),
        },
    )
    return response


# -- port page: chains ------------------------------------------------------------------------


def test_port_page_paints_its_chains_labelled_with_the_group_rule(world: World, as_alice) -> None:
    html = as_alice.get(f"/ports/{world.port_a.pk}").content.decode()
    ssh = world.web.rules.get(port_range_min=22)
    pattern = rf'<tr data-family="4" [^>]*data-rule-id="{ssh.pk}"[^>]*>(.*?)</tr>'
    row = re.search(pattern, html, re.S)
    assert row, "the SSH rule has a line in the IPv4 ingress chain"
    assert "allow tcp/22 from 203.0.113.0/24" in row.group(1)
    assert f'href="/security-groups/{world.web.pk}"' in row.group(1)
    for role in ("Ingress", "Egress", "Anti-spoofing"):
        assert f">{role}</span>" in html
    assert 'data-family="6"' in html  # both families
    assert "drop INVALID packets" in html and "RELATED,ESTABLISHED" in html
    assert "data-live-state" in html and f'data-port-id="{world.port_a.pk}"' in html


def test_port_page_without_a_host_says_so(world: World, as_charlie) -> None:
    html = as_charlie.get(f"/ports/{world.port_b.pk}").content.decode()
    assert "No host bound" in html
    assert 'data-live="off"' in html


def test_port_page_says_when_the_agent_is_down(world: World, as_alice) -> None:
    html = as_alice.get(f"/ports/{world.port_a.pk}").content.decode()
    assert re.search(r"<div class=\"notice warn\" data-agent-note hidden>", html)
    world.host.status = "down"
    world.host.save(update_fields=["status"])
    html = as_alice.get(f"/ports/{world.port_a.pk}").content.decode()
    assert re.search(r"<div class=\"notice warn\" data-agent-note>", html)
    assert "is not reporting" in html


def test_port_page_survives_chains_that_cannot_be_read(
    world: World, as_alice, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sgweb.live.chains

    def broken(port: Any) -> dict[str, Any]:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(sgweb.live.chains, "port_chains", broken)
    response = as_alice.get(f"/ports/{world.port_a.pk}")
    assert response.status_code == 200
    assert "Chains unavailable" in response.content.decode()


def test_chains_view_orders_roles_and_reads_targets() -> None:
    view = livepaint.chains_view(
        {
            "host": "compute-1",
            "device": "tapx",
            "chains": [
                {"name": "s", "family": 4, "role": "anti-spoofing", "rules": []},
                {"name": "i", "family": 4, "role": "ingress", "rules": [
                    {"position": 1, "text": "-A i -m state --state INVALID -j DROP",
                     "label": "drop INVALID packets", "kind": "invalid"},
                    {"position": 2, "text": "-A i -j neutron-openvswi-sg-fallback",
                     "label": "default drop", "kind": "fallback"},
                ]},
            ],
        }
    )  # fmt: skip
    chains = view.families[4]
    assert [c.role for c in chains] == ["ingress", "anti-spoofing"]
    assert [r.target for r in chains[0].rules] == ["DROP", "jump"]
    assert view.rule_count == 2 and view.state == "ok"


# -- security group page: hits ----------------------------------------------------------------


def _hits(world: World, packets: int, at: float) -> dict[str, Any]:
    rules = list(world.web.rules.all())
    return {
        "type": "rule-hits",
        "group_id": str(world.web.pk),
        "at": at,
        "rules": [
            {"rule_id": str(rule.pk), "packets": packets if rule.port_range_min == 22 else 0,
             "bytes": 60 * packets, "pps": 0.5, "last_hit_at": at if packets else None,
             "ports": 1}
            for rule in rules
        ],
    }  # fmt: skip


def test_group_page_shows_hits_and_marks_unused_rules(
    world: World, as_alice, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sgweb.live.hits

    monkeypatch.setattr(sgweb.live.hits, "group_rule_hits", lambda g: _hits(world, 123456, 1e9))
    html = as_alice.get(f"/security-groups/{world.web.pk}?sort=-hits").content.decode()
    ssh = world.web.rules.get(port_range_min=22)
    row = re.search(rf'<tr data-rule-id="{ssh.pk}"[^>]*>(.*?)</tr>', html, re.S)
    assert row and "123K" in row.group(1) and 'data-hit-count="123456"' in row.group(0)
    rows = re.findall(r'<tr data-rule-id="([^"]+)"', html)
    assert rows[0] == str(ssh.pk), "sorted by hits, most first"
    # Zeros on the first paint may be ports nobody watched yet: live.js calls rules unused once
    # its own watch has read every port (the browser lab test sees it).
    assert "is-unused" not in html
    assert 'data-rule-hits data-group-id="' in html


# -- live hooks on the host pages -------------------------------------------------------------


def test_overview_and_host_pages_subscribe_to_host_events(world: World, as_alice) -> None:
    overview = as_alice.get("/").content.decode()
    assert 'data-live-events="/ws/events"' in overview
    assert 'data-host-status="compute-1"' in overview
    host = as_alice.get("/hosts/compute-1").content.decode()
    assert 'data-live-events="/ws/hosts/compute-1"' in host
    assert 'data-host-status="compute-1"' in as_alice.get("/hosts").content.decode()


# -- traces -----------------------------------------------------------------------------------


def test_new_trace_page_is_prefilled_from_the_port_page(world: World, as_alice) -> None:
    port_page = as_alice.get(f"/ports/{world.port_a.pk}").content.decode()
    assert f"/traces/new?destination=port:{world.port_a.pk}" in port_page
    html = as_alice.get(f"/traces/new?destination=port:{world.port_a.pk}").content.decode()
    assert f'name="destination_port" value="{world.port_a.pk}"' in html
    assert "web-1 (192.0.2." in html


def test_member_runs_a_trace_and_sees_the_allowing_rule(world: World, as_alice) -> None:
    response = _start(as_alice, world)
    assert response.status_code == 302
    trace = Trace.objects.get()
    assert response["Location"] == f"/traces/{trace.pk}"
    html = as_alice.get(response["Location"]).content.decode()
    assert 'data-static-verdict="ACCEPT"' in html and ">Allowed<" in html
    ssh = world.web.rules.get(port_range_min=22)
    deciding = re.search(r'<li class="trace-step deciding"[^>]*data-rule-id="([^"]+)"', html)
    assert deciding and deciding.group(1) == str(ssh.pk)
    assert f'href="/security-groups/{world.web.pk}#rules"' in html
    sentence = re.search(r"<p class=\"sentence\" data-explanation>(.*?)</p>", html, re.S)
    assert sentence and sentence.group(1).startswith("Allowed at port web-1 ingress by ")
    assert f'data-rule-link="{ssh.pk}">rule {str(ssh.pk)[:8]}</a>' in sentence.group(1)
    listing = as_alice.get("/traces").content.decode()
    assert f"/traces/{trace.pk}" in listing and "alice" in listing


def test_a_blocked_trace_says_why(world: World, as_alice) -> None:
    response = _start(as_alice, world, port=5432)
    html = as_alice.get(response["Location"]).content.decode()
    assert 'data-static-verdict="DROP"' in html and "default drop" in html
    assert re.search(r'class="trace-step deciding"[^>]*>.*?DROP', html, re.S)


def test_trace_form_errors_are_shown_next_to_the_fields(world: World, as_alice) -> None:
    response = as_alice.post(
        "/traces",
        {"source_kind": "address", "source_address": "203.0.113.9", "destination_kind": "port",
         "destination_port": str(world.port_a.pk), "protocol": "tcp", "port": "99999"},
        HTTP_X_REQUESTED_WITH="fetch",
    )  # fmt: skip
    assert response.status_code == 400
    assert "port" in response.json()["errors"]
    missing = as_alice.post("/traces", {"source_kind": "port", "destination_kind": "port"})
    assert missing.status_code == 400 and b"Choose a port." in missing.content
    assert not Trace.objects.exists()


def test_readers_view_traces_but_do_not_run_them(world: World, as_alice, as_rita) -> None:
    trace_url = _start(as_alice, world)["Location"]
    assert as_rita.get("/traces/new").status_code == 403
    assert _start(as_rita, world).status_code == 403
    assert Trace.objects.count() == 1
    assert as_rita.get(trace_url).status_code == 200
    listing = as_rita.get("/traces").content.decode()
    assert trace_url in listing and "Trace a packet</a>" not in listing
    port_page = as_rita.get(f"/ports/{world.port_a.pk}").content.decode()
    assert "/traces/new?" not in port_page
    assert "Trace again" not in as_rita.get(trace_url).content.decode()


def test_outsiders_get_404_for_another_projects_trace_and_ports(
    world: World, as_alice, as_charlie
) -> None:
    trace_url = _start(as_alice, world)["Location"]
    assert as_charlie.get(trace_url).status_code == 404
    assert as_charlie.get("/traces/not-a-uuid").status_code == 404
    assert trace_url not in as_charlie.get("/traces").content.decode()
    assert as_charlie.get(f"/ports/{world.port_a.pk}").status_code == 404
    ports = as_charlie.get("/traces/ports?q=web").json()["ports"]
    assert ports == []
    # Nor can an outsider aim a trace at another project's port.
    assert _start(as_charlie, world).status_code in (400, 404)


def test_trace_list_filters(world: World, as_alice) -> None:
    _start(as_alice, world, port=22)
    _start(as_alice, world, port=5432)
    allowed = as_alice.get("/traces?verdict=ACCEPT").content.decode()
    dropped = as_alice.get("/traces?verdict=DROP").content.decode()
    assert allowed.count("<tr data-trace-id=") == 1 and "tcp/22" in allowed
    assert dropped.count("<tr data-trace-id=") == 1 and "tcp/5432" in dropped
    assert as_alice.get("/traces?q=5432").content.decode().count("<tr data-trace-id=") == 1
    bob = client_for(world.people.bob)
    assert bob.get("/traces?who=me").content.decode().count("<tr data-trace-id=") == 0


def _queries(client: Client, path: str) -> int:
    with CaptureQueriesContext(connection) as context:
        assert client.get(path).status_code == 200
    return len(context.captured_queries)


def test_trace_pages_run_a_constant_number_of_queries(world: World, as_alice) -> None:
    trace_url = _start(as_alice, world)["Location"]
    few_list, detail = _queries(as_alice, "/traces"), _queries(as_alice, trace_url)
    trace = Trace.objects.get()
    copies = []
    for _ in range(40):
        trace.pk = None
        copies.append(Trace(**{f.attname: getattr(trace, f.attname) for f in Trace._meta.fields
                               if f.attname != "id"}))  # fmt: skip
    Trace.objects.bulk_create(copies)
    assert _queries(as_alice, "/traces") == few_list <= 10
    assert detail <= 12
    started = time.perf_counter()
    as_alice.get("/traces")
    assert time.perf_counter() - started < 2
