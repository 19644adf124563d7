"""The dashboard in a real browser: log in, create a group, add a rule with a preset, see the
inline error for a bad CIDR, attach the group to a port, and see it everywhere."""

from __future__ import annotations

import re

import pytest

from sgweb.networks import actions as network_actions
from sgweb.networks.models import Port
from sgweb.security.models import SecurityGroup
from tests.personas import PASSWORD, Personas

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lab_port(personas: Personas) -> Port:
    network = network_actions.create_network(personas.alice, personas.project_a, name="lab-net")
    network_actions.create_subnet(personas.alice, network, cidr="192.0.2.0/24")
    return network_actions.create_port(
        personas.adam, personas.project_a, network, name="vm-1", host="compute-1"
    )


def log_in(page, live_server, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/accounts/login")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def test_member_creates_a_group_adds_rules_and_attaches_it_to_a_port(
    page, live_server, personas: Personas, lab_port: Port, screenshot, transactional_db
) -> None:
    log_in(page, live_server, "alice")
    screenshot("01-overview")

    # Create a group.
    page.click("nav >> text=Security groups")
    page.click("text=New group")
    page.fill("#g-name", "web")
    page.fill("#g-description", "Public web servers")
    page.click("button:has-text('Create group')")
    page.wait_for_url(re.compile(r"/security-groups/[0-9a-f-]{36}$"))
    group = SecurityGroup.objects.get(name="web", project=personas.project_a)
    assert page.locator("h1").inner_text().startswith("web")

    # Add a rule with the SSH preset from a CIDR.
    page.click("button.preset:has-text('SSH')")
    assert page.input_value("#r-protocol") == "tcp"
    assert page.input_value("#r-port-min") == "22"
    page.fill("#r-cidr", "203.0.113.0/24")
    page.click("button:has-text('Add rule')")
    page.wait_for_url(re.compile(r"added="))
    ssh = group.rules.get(port_range_min=22)
    row = page.locator(f"tr[data-rule-id='{ssh.pk}']")
    assert "203.0.113.0/24" in row.inner_text()

    # A bad CIDR: the server's message appears next to the field, nothing is added.
    rules_before = group.rules.count()
    page.click("button.preset:has-text('HTTPS')")
    page.fill("#r-cidr", "203.0.113.300/24")
    page.click("button:has-text('Add rule')")
    error = page.locator("[data-error-for='remote_ip_prefix']")
    error.wait_for(state="visible")
    page.wait_for_function(
        "document.querySelector(\"[data-error-for='remote_ip_prefix']\").textContent.includes('valid')"
    )
    # The API's words, which are Neutron's (InvalidCIDR), shown inline before anything is saved.
    assert "Invalid CIDR 203.0.113.300/24 given as IP prefix" in error.inner_text()
    assert page.get_attribute("#r-cidr", "aria-invalid") == "true"
    screenshot("02-group-inline-error")
    assert group.rules.count() == rules_before

    # Fix it and add the rule.
    page.fill("#r-cidr", "203.0.113.0/24")
    with page.expect_navigation():
        page.click("button:has-text('Add rule')")
    https = group.rules.get(port_range_min=443)
    assert page.locator(f"tr[data-rule-id='{https.pk}']").is_visible()
    screenshot("03-group-with-rules")

    # Attach the group to the port from the port's page.
    page.goto(f"{live_server.url}/ports/{lab_port.pk}")
    page.select_option("#add-group", str(group.pk))
    page.click("button:has-text('Attach')")
    page.wait_for_url(re.compile(r"/ports/.*#groups$"))
    groups_panel = page.locator("#groups")
    assert "web" in groups_panel.inner_text()
    screenshot("04-port-with-group")

    # The group page lists the port, the lists show the link both ways.
    page.goto(f"{live_server.url}/security-groups/{group.pk}")
    assert "vm-1" in page.locator("[data-table='group-ports']").inner_text()
    page.goto(f"{live_server.url}/ports")
    port_row = page.locator(f"tr[data-port-id='{lab_port.pk}']")
    assert "web" in port_row.locator("[data-port-groups]").inner_text()
    page.goto(f"{live_server.url}/security-groups?q=web")
    group_row = page.locator(f"tr[data-group-id='{group.pk}']")
    assert group_row.locator("[data-port-count]").inner_text() == "1"
    screenshot("05-group-list")


def test_deleting_a_rule_asks_first(
    page, live_server, personas: Personas, screenshot, transactional_db
) -> None:
    from sgweb.security import actions

    group = actions.create_security_group(personas.alice, personas.project_a, name="db")
    rule = actions.create_security_group_rule(
        personas.alice,
        group,
        direction="ingress",
        protocol="tcp",
        port_range_min=5432,
        port_range_max=5432,
    )
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/security-groups/{group.pk}")
    row = page.locator(f"tr[data-rule-id='{rule.pk}']")
    row.locator("button[type=submit]").click()
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    screenshot("06-confirm-delete")
    dialog.locator("button:has-text('Cancel')").click()
    assert group.rules.filter(pk=rule.pk).exists()
    row.locator("button[type=submit]").click()
    dialog.locator("[data-confirm-ok]").click()
    page.wait_for_url(re.compile(r"#rules$"))
    assert not group.rules.filter(pk=rule.pk).exists()


def test_reader_sees_a_group_without_write_controls(
    page, live_server, personas: Personas, transactional_db
) -> None:
    from sgweb.security import actions

    group = actions.create_security_group(personas.alice, personas.project_a, name="ro")
    rule = actions.create_security_group_rule(
        personas.alice,
        group,
        direction="ingress",
        protocol="tcp",
        port_range_min=5432,
        port_range_max=5432,
    )
    log_in(page, live_server, "rita")
    page.goto(f"{live_server.url}/security-groups/{group.pk}")
    # The group and its rule are shown (so the missing controls below are not an empty or
    # refused page), yet there is no form and the rule has no delete button.
    row = page.locator(f"tr[data-rule-id='{rule.pk}']")
    assert row.count() == 1
    assert row.locator("button[type=submit]").count() == 0
    assert page.locator("form[data-rule-form]").count() == 0
    assert page.locator("text=Read-only").count() >= 1


def test_rule_form_switches_between_cidr_and_remote_group_and_hints_early(
    page, live_server, personas: Personas, transactional_db
) -> None:
    from sgweb.security import actions

    group = actions.create_security_group(personas.alice, personas.project_a, name="app")
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/security-groups/{group.pk}")
    assert page.locator("#r-group").is_hidden()
    # A hint while typing, before anything is sent: an IPv6 prefix on an IPv4 rule.
    page.fill("#r-cidr", "2001:db8::/32")
    assert "IPv6 prefix" in page.locator("[data-error-for='remote_ip_prefix']").inner_text()

    page.check("input[name=remote_kind][value=group]", force=True)
    assert page.locator("#r-group").is_visible()
    assert page.locator("#r-cidr").is_hidden()
    page.click("button.preset:has-text('All TCP')")
    with page.expect_navigation():
        page.click("button:has-text('Add rule')")
    rule = group.rules.get(protocol="tcp")
    assert rule.remote_group_id == group.pk and rule.remote_ip_prefix is None
    assert (rule.port_range_min, rule.port_range_max) == (1, 65535)
