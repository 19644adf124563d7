"""Daily use against a real lab, in a real browser, at 1440 and 800 px (issue 14).

One lab (a host with one VM and its real agent, `sgwt-` namespaces) and one daphne serving the
dashboard and its websockets are shared by the module and always torn down. A second host,
`ghost-1`, has a port of the lab's group but no agent: changes reach it on paper only.

- After a rule is added from the group page, the page says where it went: the lab host applies
  it ("applied revision N in 0.4 s") and the ghost host waits ("no agent, pending"), live.
- Someone else adds and deletes a rule through the API: the open group page shows it without a
  reload and says who did it; the overview's recent changes get the entry too.
- The port and host pages say the same: the lab VM's port page and its host's page move to the
  applied revision live; the ghost host's page says the change waits for an agent, live too.
- A group attached and detached on the port page is followed to the host like a rule change.
- A bulk create through the API (one `changes` message) is drawn once on the group page and
  added to the overview's recent changes, newest on top.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import WIDTHS
from tests.browser.livelab import LiveLab, log_in

pytestmark = [pytest.mark.browser, pytest.mark.kernel, pytest.mark.redis]

LIVE_TIMEOUT_MS = 30_000
GHOST = "ghost-1"
TOOK = r"(under 0\.1|\d+(\.\d)?) s"  # how long an apply took, as the page says it


@pytest.fixture(scope="module")
def lab() -> Iterator[LiveLab]:
    if os.geteuid() != 0:
        pytest.skip("kernel: needs root")
    live = LiveLab(hosts=1, vms=1)
    try:
        live.start()
        vm = live.stack.state["vms"][0]
        port = live.stack.api("GET", f"/ports/{vm['port_id']}")["port"]
        live.stack.api(
            "POST",
            "/ports",
            {"port": {"network_id": port["network_id"], "name": "ghost-vm",
                      "binding:host_id": GHOST,
                      "security_groups": [live.stack.state["group_id"]]}},
        )  # fmt: skip
        yield live
    finally:
        live.close()


def group_url(lab: LiveLab) -> str:
    return f"{lab.url}/security-groups/{lab.stack.state['group_id']}"


@pytest.mark.parametrize("width", WIDTHS)
def test_a_rule_added_on_the_group_page_says_where_it_went(
    page: Any, lab: LiveLab, screenshot: Any, width: int
) -> None:
    log_in(page, lab)
    page.goto(group_url(lab))
    page.click("button.preset:has-text('Custom')")
    # Typing the protocol and pressing Tab lands in the port field it brought up.
    page.click("#r-protocol")
    page.keyboard.type("tcp")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "r-port-min"
    page.keyboard.type(str(7000 + width))
    with page.expect_navigation():
        page.click("button:has-text('Add rule')")
    box = page.locator("[data-delivery]")
    assert box.count() == 1
    host = lab.stack.state["vms"][0]["host"]
    # The lab host's agent applies it: the sentence changes without a reload.
    page.wait_for_selector(
        f"[data-delivery-host='{host}'][data-state='applied']", timeout=LIVE_TIMEOUT_MS
    )
    sentence = box.locator("[data-delivery-sentence]").inner_text()
    expected = r"Applied on 1/2 hosts \(revision \d+\); ghost-1: no agent, pending\."
    assert re.search(expected, sentence)
    assert re.search(rf"applied revision \d+ in {TOOK}", box.inner_text())
    print(f"\n[{width} px] group page, rule added: {sentence} ({box.inner_text()!r})")
    screenshot("daily-01-rule-delivery")
    # Shown once: the next page drawn is calm again.
    page.reload()
    assert page.locator("[data-delivery]").count() == 0


@pytest.mark.parametrize("width", WIDTHS)
def test_the_group_page_and_the_overview_follow_changes_made_elsewhere(
    page: Any, lab: LiveLab, screenshot: Any, width: int
) -> None:
    log_in(page, lab)
    page.goto(group_url(lab))
    page.wait_for_selector("#rules [data-live-state][data-state='live']", timeout=LIVE_TIMEOUT_MS)
    rule_id = lab.add_rule(protocol="udp", port_range_min=5000 + width, port_range_max=5000 + width)
    row = page.locator(f"tr[data-rule-id='{rule_id}']")
    row.wait_for(timeout=LIVE_TIMEOUT_MS)
    note = page.locator("[data-group-changed]")
    assert f"added lab-vms: ingress udp/{5000 + width}" in note.inner_text()
    screenshot("daily-02-group-follows-the-api")
    lab.delete_rule(rule_id)
    row.wait_for(state="detached", timeout=LIVE_TIMEOUT_MS)
    assert "deleted" in note.inner_text()

    page.goto(f"{lab.url}/")
    page.wait_for_selector("[data-live-state][data-state='live']", timeout=LIVE_TIMEOUT_MS)
    rule_id = lab.add_rule(protocol="udp", port_range_min=6000 + width, port_range_max=6000 + width)
    try:
        page.wait_for_selector(
            f"[data-recent-changes] tr:first-child:has-text('udp/{6000 + width}')",
            timeout=LIVE_TIMEOUT_MS,
        )
        screenshot("daily-03-overview-recent-changes-live")
    finally:
        lab.delete_rule(rule_id)


def test_a_bulk_create_elsewhere_is_drawn_once_on_the_group_page_and_the_overview(
    page: Any, lab: LiveLab
) -> None:
    log_in(page, lab)
    page.goto(group_url(lab))
    page.wait_for_selector("#rules [data-live-state][data-state='live']", timeout=LIVE_TIMEOUT_MS)
    bodies = [
        {"security_group_id": lab.stack.state["group_id"], "direction": "ingress",
         "ethertype": "IPv4", "protocol": "udp", "port_range_min": port, "port_range_max": port}
        for port in (5301, 5302, 5303)
    ]  # fmt: skip
    created = lab.stack.api("POST", "/security-group-rules", {"security_group_rules": bodies})
    ids = [rule["id"] for rule in created["security_group_rules"]]
    try:
        for rule_id in ids:
            page.locator(f"tr[data-rule-id='{rule_id}']").wait_for(timeout=LIVE_TIMEOUT_MS)
        note = page.locator("[data-group-changed]").inner_text()
        assert "added 3 security group rules" in note
        page.goto(f"{lab.url}/")
        page.wait_for_selector("[data-live-state][data-state='live']", timeout=LIVE_TIMEOUT_MS)
        more = [{**body, "port_range_min": port, "port_range_max": port}
                for body, port in zip(bodies[:2], (5304, 5305), strict=True)]  # fmt: skip
        created = lab.stack.api("POST", "/security-group-rules", {"security_group_rules": more})
        ids += [rule["id"] for rule in created["security_group_rules"]]
        # The newest on top, as if they had come one by one.
        page.wait_for_selector(
            "[data-recent-changes] tr:first-child:has-text('udp/5305')", timeout=LIVE_TIMEOUT_MS
        )
        assert "udp/5304" in page.locator("[data-recent-changes] tr:nth-child(2)").inner_text()
    finally:
        for rule_id in ids:
            lab.delete_rule(rule_id)


def _revision_applied(page: Any, host: str, at_least: int) -> None:
    """Wait until the page's sync line for `host` says a revision >= `at_least` is applied."""
    page.wait_for_function(
        "([host, least]) => [...document.querySelectorAll('[data-host-sync]')]"
        ".some((el) => el.dataset.hostSync === host"
        " && /^revision \\d+ applied/.test(el.textContent)"
        " && Number(el.textContent.match(/^revision (\\d+)/)[1]) >= least)",
        arg=[host, at_least],
        timeout=LIVE_TIMEOUT_MS,
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_the_port_and_host_pages_follow_a_change_to_the_host_too(
    page: Any, lab: LiveLab, screenshot: Any, width: int
) -> None:
    vm = lab.stack.state["vms"][0]
    host = vm["host"]
    log_in(page, lab)
    # The lab VM's port page: the host's line moves to the new revision without a reload.
    page.goto(f"{lab.url}/ports/{vm['port_id']}")
    page.wait_for_selector("#firewall-chains [data-live-state][data-state='live']",
                           timeout=LIVE_TIMEOUT_MS)  # fmt: skip
    rule_id = lab.add_rule(protocol="udp", port_range_min=4000 + width, port_range_max=4000 + width)
    try:
        _revision_applied(page, host, lab.stack.desired_revision(host))
        screenshot("daily-04-port-page-follows-its-host")
        # The host page too, for the next change.
        page.goto(f"{lab.url}/hosts/{host}")
        page.wait_for_selector("[data-live-state][data-state='live']", timeout=LIVE_TIMEOUT_MS)
        lab.delete_rule(rule_id)
        rule_id = ""
        _revision_applied(page, host, lab.stack.desired_revision(host))
        screenshot("daily-05-host-page-follows-the-change")
        # A host without an agent says the change waits there, and the count follows live.
        page.goto(f"{lab.url}/hosts/{GHOST}")
        page.wait_for_selector("[data-live-state][data-state='live']", timeout=LIVE_TIMEOUT_MS)
        line = page.locator(f"[data-host-sync='{GHOST}']")
        before = int(line.get_attribute("data-desired") or 0)
        assert line.inner_text() == f"no agent: revision {before} waits until one starts"
        rule_id = lab.add_rule(protocol="udp", port_range_min=4100 + width,
                               port_range_max=4100 + width)  # fmt: skip
        page.wait_for_function(
            "([host, before]) => { const el = document.querySelector("
            '`[data-host-sync="${host}"]`); return Number(el.dataset.desired) > before'
            " && el.textContent.startsWith('no agent: revision '); }",
            arg=[GHOST, before],
            timeout=LIVE_TIMEOUT_MS,
        )
        screenshot("daily-06-ghost-host-waits")
    finally:
        if rule_id:
            lab.delete_rule(rule_id)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_group_attached_on_the_port_page_says_where_it_went(
    page: Any, lab: LiveLab, screenshot: Any, width: int
) -> None:
    vm = lab.stack.state["vms"][0]
    host = vm["host"]
    group = lab.stack.api("GET", f"/security-groups/{lab.stack.state['group_id']}")
    body = {"name": f"spare-{width}", "project_id": group["security_group"]["project_id"]}
    spare = lab.stack.api("POST", "/security-groups", {"security_group": body})
    spare_id = spare["security_group"]["id"]
    try:
        log_in(page, lab)
        page.goto(f"{lab.url}/ports/{vm['port_id']}")
        page.select_option("#add-group", spare_id)
        with page.expect_navigation():
            page.click("#groups button:has-text('Attach')")
        box = page.locator("[data-delivery]")
        assert "group attached" in box.inner_text()
        page.wait_for_selector(
            f"[data-delivery-host='{host}'][data-state='applied']", timeout=LIVE_TIMEOUT_MS
        )
        sentence = box.locator("[data-delivery-sentence]").inner_text()
        assert re.fullmatch(rf"Applied on 1/1 hosts \(revision \d+\) in {TOOK}\.", sentence)
        print(f"\n[{width} px] port page, group attached: {sentence}")
        screenshot("daily-07-port-change-delivery")
        # Detached from the same page: followed the same way.
        page.locator(f"#groups tr[data-group-id='{spare_id}'] button:has-text('Detach')").click()
        with page.expect_navigation():
            page.locator("#confirm-dialog [data-confirm-ok]").click()
        assert "group detached" in page.locator("[data-delivery]").inner_text()
        page.wait_for_selector(
            f"[data-delivery-host='{host}'][data-state='applied']", timeout=LIVE_TIMEOUT_MS
        )
    finally:
        with contextlib.suppress(Exception):
            lab.stack.api("PUT", f"/ports/{vm['port_id']}",
                          {"port": {"security_groups": [lab.stack.state["group_id"]]}})  # fmt: skip
        lab.stack.api("DELETE", f"/security-groups/{spare_id}")


@pytest.mark.parametrize("width", WIDTHS)
def test_an_apply_finished_before_the_page_listens_still_says_how_long_it_took(
    page: Any, lab: LiveLab, screenshot: Any, width: int
) -> None:
    """The page is drawn while the host is still applying, and the apply ends before its socket
    opens: the host's state as the socket opens (not an `apply` message) says it applied, and
    the time is still said, from the host's last apply."""
    host = lab.stack.state["vms"][0]["host"]
    agent = lab.stack.agent_pid(host)

    def late_socket(ws: Any) -> None:
        # The agent resumes and applies before the page hears anything.
        os.kill(agent, signal.SIGCONT)
        deadline = time.monotonic() + LIVE_TIMEOUT_MS / 1000
        while not lab.stack.in_sync(host) and time.monotonic() < deadline:
            time.sleep(0.1)
        ws.connect_to_server()

    log_in(page, lab)
    page.goto(group_url(lab))
    page.click("button.preset:has-text('Custom')")
    page.fill("#r-protocol", "tcp")
    page.fill("#r-port-min", str(7100 + width))
    page.route_web_socket(re.compile(r"/ws/events\?statuses=now"), late_socket)
    os.kill(agent, signal.SIGSTOP)  # the page is drawn before the host applies
    try:
        with page.expect_navigation():
            page.click("button:has-text('Add rule')")
        drawn = json.loads(page.locator("[data-delivery]").get_attribute("data-delivery") or "{}")
        assert {h["name"]: h["state"] for h in drawn["hosts"]}[host] != "applied"
        item = page.locator(f"[data-delivery-host='{host}']")
        page.wait_for_selector(
            f"[data-delivery-host='{host}'][data-state='applied']", timeout=LIVE_TIMEOUT_MS
        )
        detail = item.locator("[data-delivery-detail]").inner_text()
        assert re.fullmatch(rf"applied revision \d+ in {TOOK}", detail), detail
        screenshot("daily-08-applied-before-the-socket")
    finally:
        os.kill(agent, signal.SIGCONT)
