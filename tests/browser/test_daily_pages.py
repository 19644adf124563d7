"""Daily use in a real browser at 1440 and 800 px (issue 14): pages that fit and keep their key
columns in view, names that tell alike groups apart, small defects that made admins stop.

Against pytest-django's live server (no websockets needed here; the live parts are in
test_daily_live.py against a real lab)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from sgweb.networks import actions as network_actions
from sgweb.networks.models import Network, Port
from sgweb.security import actions as security_actions
from sgweb.security.models import SecurityGroup
from sgweb.tenancy.models import Profile
from tests.browser.conftest import WIDTHS
from tests.browser.test_dashboard_flow import log_in
from tests.personas import Personas

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def web(personas: Personas) -> SecurityGroup:
    """Project alpha: a network, the group `web` with an SSH rule, two ports on compute-1."""
    alice = personas.alice
    network = network_actions.create_network(alice, personas.project_a, name="web-net")
    network_actions.create_subnet(alice, network, cidr="192.0.2.0/24")
    group = security_actions.create_security_group(alice, personas.project_a, name="web")
    security_actions.create_security_group_rule(
        alice, group, direction="ingress", protocol="tcp", port_range_min=22,
        port_range_max=22, remote_ip_prefix="203.0.113.0/24",
    )  # fmt: skip
    for n in (1, 2):
        network_actions.create_port(
            personas.adam, personas.project_a, network,
            name=f"web-server-with-a-long-name-{n}", host="compute-1",
            security_groups=[str(group.pk)],
        )  # fmt: skip
    return group


def fits(page: Any, selector: str) -> bool:
    """The element's right edge is inside the window (not scrolled or clipped out of view)."""
    box = page.locator(selector).first.bounding_box()
    return (
        box is not None and box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"]
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_ports_show_their_status_and_keep_name_and_groups_in_view(
    page: Any, live_server: Any, personas: Personas, web: SecurityGroup, screenshot: Any,
    width: int,
) -> None:  # fmt: skip
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/ports")
    row = page.locator("tr[data-port-id]").first
    assert row.locator("[data-port-status]").inner_text().startswith("Active")
    assert fits(page, "tr[data-port-id] [data-port-groups]")
    assert fits(page, "tr[data-port-id] [data-port-status]")
    # Scrolled sideways to the last column, the port's name is still there.
    page.locator(".table-wrap").first.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    assert fits(page, "tr[data-port-id] td:first-child")
    screenshot("daily-10-ports")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_group_page_shows_its_ports_unclipped(
    page: Any, live_server: Any, personas: Personas, web: SecurityGroup, screenshot: Any,
    width: int,
) -> None:  # fmt: skip
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/security-groups/{web.pk}")
    table = page.locator("[data-table='group-ports']")
    wrap = table.locator("xpath=..")
    clipped = wrap.evaluate("el => el.scrollWidth > el.clientWidth + 1")
    assert not clipped, "the ports using this group fit their panel"
    assert fits(page, "[data-table='group-ports'] tr[data-port-id] td:nth-child(3)")  # host
    screenshot("daily-11-group-ports")


@pytest.mark.parametrize("width", WIDTHS)
def test_groups_named_alike_name_their_project_in_pickers_and_filters(
    page: Any, live_server: Any, personas: Personas, web: SecurityGroup, width: int
) -> None:
    security_actions.ensure_default_group(personas.project_b)  # bravo's `default` too
    log_in(page, live_server, "adam")
    page.goto(f"{live_server.url}/ports")
    labels = page.locator("#f-group option").all_inner_texts()
    assert "default · alpha" in labels and "default · bravo" in labels
    port = Port.objects.filter(project=personas.project_a).first()
    assert port is not None
    page.goto(f"{live_server.url}/ports/{port.pk}")
    assert "default · alpha" in page.locator("#add-group option").all_inner_texts()


@pytest.mark.parametrize("width", WIDTHS)
def test_audit_entries_name_the_rule_with_its_ports_and_times_carry_their_zone(
    page: Any, live_server: Any, personas: Personas, web: SecurityGroup, screenshot: Any,
    width: int,
) -> None:  # fmt: skip
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/audit?type=security_group_rule")
    text = page.locator("main table.data").inner_text()
    assert "web: ingress tcp/22 from 203.0.113.0/24" in text
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", text)
    screenshot("daily-12-audit")


@pytest.mark.parametrize("width", WIDTHS)
def test_cancelling_a_role_change_puts_the_select_back(
    page: Any, live_server: Any, personas: Personas, width: int
) -> None:
    log_in(page, live_server, "adam")
    page.goto(f"{live_server.url}/users")
    select = page.locator(f"#role-{personas.bob.pk}")
    assert select.input_value() == "member"
    select.select_option("reader")
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    dialog.locator("button:has-text('Cancel')").click()
    # The dialog's close event comes after the click returns, and the form is reset then:
    # wait for it rather than read the select at once.
    expect(select).to_have_value("member")
    assert Profile.objects.get(user=personas.bob).role == "member"


@pytest.mark.parametrize("width", WIDTHS)
def test_question_mark_opens_the_keyboard_help(
    page: Any, live_server: Any, personas: Personas, width: int
) -> None:
    log_in(page, live_server, "alice")
    help_dialog = page.locator("#keyboard-help")
    assert not help_dialog.is_visible()
    page.keyboard.press("?")
    help_dialog.wait_for(state="visible")
    assert "Focus the search box" in help_dialog.inner_text()
    page.keyboard.press("Escape")
    help_dialog.wait_for(state="hidden")
    # Typed into a field, "?" is a character, not a shortcut.
    page.goto(f"{live_server.url}/ports")
    page.click("[data-search]")
    page.keyboard.press("?")
    assert not help_dialog.is_visible()


@pytest.mark.parametrize("width", WIDTHS)
def test_networks_and_subnets_are_edited_and_deleted_from_their_pages(
    page: Any, live_server: Any, personas: Personas, screenshot: Any, width: int
) -> None:
    network = network_actions.create_network(personas.alice, personas.project_a, name="spare")
    subnet = network_actions.create_subnet(personas.alice, network, cidr="198.51.100.0/24")
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/networks/{network.pk}")
    page.click("a:has-text('Edit')")
    page.fill("#n-name", "spare-renamed")
    with page.expect_navigation():
        page.click("#edit-network button:has-text('Save')")
    assert page.locator("h1").inner_text().startswith("spare-renamed")
    page.click(f"[data-open-details='edit-subnet-{subnet.pk}']")
    page.fill(f"#se-servers-{subnet.pk}", "198.51.100.250")
    page.click(f"#edit-subnet-{subnet.pk} button:has-text('Save subnet')")
    # The page is drawn again with the change (a same-page redirect reloads, not just scrolls).
    row = page.locator(f"tr[data-subnet-id='{subnet.pk}']")
    expect(row).to_contain_text("198.51.100.250")
    screenshot("daily-13-network-edited")
    page.click(f"tr[data-subnet-id='{subnet.pk}'] button[aria-label^='Delete subnet']")
    page.locator("#confirm-dialog [data-confirm-ok]").click()
    page.wait_for_url(re.compile(r"#subnets$"))
    page.click("button:has-text('Delete')")
    page.locator("#confirm-dialog [data-confirm-ok]").click()
    page.wait_for_url(f"{live_server.url}/networks")
    assert not Network.objects.filter(pk=network.pk).exists()
