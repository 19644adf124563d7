"""The firewall pages in a real browser (issue 16): a member creates a deny rule (after an
inline error), a policy holding it and a firewall group on a router interface, only through
the pages, and sees the group on the router's page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from sgweb.fwaas.models import FirewallGroup, FirewallPolicy, FirewallRule
from tests.browser.conftest import WIDTHS
from tests.controlplane.fwaas_factories import RoutedPair, routed_pair
from tests.personas import PASSWORD, Personas

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
UUID_PAGE = r"/{}/[0-9a-f-]{{36}}$"


@pytest.fixture
def pair(personas: Personas) -> RoutedPair:
    return routed_pair(personas.adam, personas.alice, personas.project_a)


def log_in(page, live_server, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/accounts/login")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def _create_rule(page, url: str) -> FirewallRule:  # type: ignore[no-untyped-def]
    page.goto(f"{url}/firewall-groups")  # the sidebar folds away at narrow widths
    page.click("nav[aria-label='Firewall objects'] >> text=Firewall rules")
    page.click("text=New rule")
    page.fill("#fr-name", "deny-db")
    page.select_option("#fr-protocol", "icmp")
    page.fill("#fr-destination-port", "5432")
    page.select_option("#fr-action", "deny")
    page.click("button:has-text('Create rule')")
    # The action's words next to the field, nothing created.
    error = page.locator("[data-error-for='destination_port']")
    expect(error).to_contain_text("not allowed when protocol is set to ICMP")
    assert page.get_attribute("#fr-destination-port", "aria-invalid") == "true"
    assert not FirewallRule.objects.filter(name="deny-db").exists()
    page.select_option("#fr-protocol", "tcp")
    page.click("button:has-text('Create rule')")
    page.wait_for_url(re.compile(UUID_PAGE.format("firewall-rules")))
    return FirewallRule.objects.get(name="deny-db")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_member_makes_a_rule_a_policy_and_a_group_from_the_pages(
    page, live_server, personas: Personas, pair: RoutedPair, screenshot, transactional_db, width
) -> None:
    log_in(page, live_server, "alice")
    rule = _create_rule(page, live_server.url)
    assert (rule.protocol, rule.destination_port, rule.action) == ("tcp", "5432", "deny")
    screenshot("fwforms-01-rule")

    page.click(".breadcrumbs >> text=Firewall rules")
    page.click("nav[aria-label='Firewall objects'] >> text=Policies")
    page.click("text=New policy")
    page.fill("#fp-name", "prod-egress")
    page.check(f"#pick-{rule.pk}")
    page.fill(f"input[name='position-{rule.pk}']", "1")
    page.click("button:has-text('Create policy')")
    page.wait_for_url(re.compile(UUID_PAGE.format("firewall-policies")))
    policy = FirewallPolicy.objects.get(name="prod-egress")
    assert [r.pk for r in policy.ordered_rules()] == [rule.pk]
    assert "deny-db" in page.inner_text(f"tr[data-rule-id='{rule.pk}']")
    screenshot("fwforms-02-policy")

    page.click(".breadcrumbs >> text=Firewall policies")
    page.click("nav[aria-label='Firewall objects'] >> text=Firewall groups")
    page.click("text=New group")
    page.fill("#fg-name", "app-edge")
    page.select_option("#fg-egress_policy", str(policy.pk))
    page.check(f"#port-{pair.app_port.pk}")
    page.click("button:has-text('Create group')")
    page.wait_for_url(re.compile(UUID_PAGE.format("firewall-groups")))
    group = FirewallGroup.objects.get(name="app-edge")
    assert group.egress_policy_id == policy.pk
    assert [link.port_id for link in group.port_links.all()] == [pair.app_port.pk]
    screenshot("fwforms-03-group")
    # The page fits its width: nothing but the tables' own scrollers is wider than the window.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width

    page.goto(f"{live_server.url}/routers/{pair.router.pk}")
    row = page.locator(f"tr[data-port-id='{pair.app_port.pk}']")
    assert "app-edge" in row.inner_text() and "prod-egress" in row.inner_text()
