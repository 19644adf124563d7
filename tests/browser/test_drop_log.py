"""The drop log in a real browser: a blocked connect fed through the control plane's task
appears on the port's drops page without a reload, explained; "Allow this" opens the group's
rule form filled in with the narrowest rule, and only the admin's click adds it.

The page's socket is a stand-in (pytest-django's live server speaks no websockets): the test
hands it exactly the `drop-flows` event the task dispatched after its commit. The real socket's
delivery and isolation are tested over Redis in tests/droplog/test_live_drops.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from sgweb import dispatch
from sgweb.droplog.models import DropFlow
from sgweb.droplog.tasks import record_flows
from sgweb.networks import actions as network_actions
from sgweb.security import actions as security_actions
from sgweb.security.models import SecurityGroupRule
from tests.droplog.batches import FlowAgent, blocked_ssh
from tests.personas import PASSWORD, Personas

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# A WebSocket that opens at once and receives what the test hands `window.__deliver`.
FAKE_SOCKET = """
window.__sockets = [];
window.WebSocket = class extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.readyState = 0;
    window.__sockets.push(this);
    setTimeout(() => { this.readyState = 1; this.dispatchEvent(new Event("open")); }, 0);
  }
  send() {}
  close() { this.readyState = 3; }
};
window.__deliver = (message) => window.__sockets.forEach((socket) => {
  const event = new MessageEvent("message", { data: JSON.stringify(message) });
  socket.dispatchEvent(event);
});
"""


@pytest.fixture
def web(personas: Personas) -> Any:
    alice, project = personas.alice, personas.project_a
    network = network_actions.create_network(alice, project, name="net")
    network_actions.create_subnet(alice, network, cidr="192.0.2.0/24")
    group = security_actions.create_security_group(alice, project, name="web")
    security_actions.create_security_group_rule(
        alice, group, direction="ingress", protocol="tcp", port_range_min=22,
        port_range_max=22, remote_ip_prefix="198.51.100.0/24",
    )  # fmt: skip
    port = network_actions.create_port(
        personas.adam, project, network, name="web1", security_groups=[str(group.pk)],
        host="compute1",
    )  # fmt: skip
    port.group = group
    return port


def test_a_drop_appears_live_and_allow_this_fills_in_the_rule_the_admin_then_adds(
    page: Any, live_server: Any, web: Any, monkeypatch: pytest.MonkeyPatch, screenshot: Any
) -> None:
    sent: list[tuple[str, dict[str, Any], str]] = []
    monkeypatch.setattr(dispatch, "_event_sender", lambda k, p, s: sent.append((k, p, s)))
    page.add_init_script(FAKE_SOCKET)
    page.goto(f"{live_server.url}/accounts/login")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}/drops?port_id={web.pk}")
    assert page.locator("[data-drops-empty]").is_visible()
    page.wait_for_function("window.__sockets.length > 0 && window.__sockets[0].readyState === 1")

    record_flows(batch=FlowAgent().batch(blocked_ssh(web)))
    ((event, scope),) = [(payload, to) for kind, payload, to in sent if kind == "drop-flows"]
    assert scope == f"project:{web.project_id.hex}"
    page.evaluate("(message) => window.__deliver(message)", event)

    key = DropFlow.objects.get().key
    row = page.locator(f"tr[data-flow='{key}']")
    row.wait_for(state="visible")
    assert "dropped at port web1 ingress by the default drop" in row.inner_text()
    assert "203.0.113.9:40000" in row.inner_text() and "web1" in row.inner_text()
    assert page.locator("[data-drops-empty]").is_hidden()
    screenshot("drops-live-row")

    rules_before = SecurityGroupRule.objects.count()
    row.locator("[data-allow-this]").click()
    page.wait_for_url(re.compile(rf"/security-groups/{web.group.pk}\?.*#add-rule$"))
    assert page.input_value("#r-cidr") == "203.0.113.9/32"
    assert page.input_value("#r-protocol") == "tcp"
    assert page.input_value("#r-port-min") == "22" and page.input_value("#r-port-max") == "22"
    assert page.is_checked("input[name=direction][value=ingress]")
    assert SecurityGroupRule.objects.count() == rules_before  # nothing without the click
    screenshot("drops-allow-this-form")

    page.click("button:has-text('Add rule')")
    page.wait_for_url(re.compile(r"added="))
    assert SecurityGroupRule.objects.filter(
        security_group=web.group, remote_ip_prefix="203.0.113.9/32", port_range_min=22
    ).exists()
