"""/metrics: parsed with Prometheus' own text parser, and closed to strangers."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sgweb.accounting import actions
from tests.accounting.documents import Agent, alices_lab, dropped, rule_hit

pytestmark = pytest.mark.django_db


def scrape(client, **headers) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_a_scrape_has_rule_hits_port_drops_and_the_hosts_health(client, alice, project_a):
    lab = alices_lab(alice, project_a)
    agent = Agent()
    actions.record(agent.document([]))
    actions.record(
        agent.document([rule_hit(lab, lab.icmp, 4, 336), dropped(lab, 2)], [["FORWARD", 8, 672]])
    )
    agent.document([])  # lost with the queue
    actions.record(agent.document([]))
    samples = scrape(client)
    rule = (("project_id", project_a.id.hex), ("rule_id", str(lab.icmp.id)),
            ("security_group_id", str(lab.group.id)))  # fmt: skip
    assert samples["sgweb_rule_hits_packets_total"][rule] == 4
    assert samples["sgweb_rule_hits_bytes_total"][rule] == 336
    port = (("direction", "ingress"), ("port_id", str(lab.port.id)))
    assert samples["sgweb_port_packets_total"][(*port, ("verdict", "drop"))] == 2
    host = (("host", "h1"),)
    assert samples["sgweb_host_chain_packets_total"][(("chain", "FORWARD"), *host)] == 8
    assert samples["sgweb_accounting_lost_intervals_total"][host] == 1
    health = (
        "sgweb_host_revision_lag",
        "sgweb_host_apply_failures_total",
        "sgweb_host_drift_repairs_total",
        "sgweb_accounting_document_age_seconds",
    )
    for name in health:
        assert host in samples[name], name


def test_metrics_need_the_token_or_an_allowed_address(client, settings, db):
    settings.SGWEB_METRICS_ALLOWED_IPS = ["192.0.2.0/24"]
    settings.SGWEB_METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 403  # the test client is 127.0.0.1
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.9").status_code == 200


def test_without_a_token_only_loopback_may_scrape_by_default(client, db):
    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="198.51.100.1").status_code == 403
