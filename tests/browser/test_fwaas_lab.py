"""A router's firewall in a real browser against a real lab (issue 16): nothing stubbed.

One lab for the module: a compute host with a VM on lab-net and one on lab-net2, the network
node whose router lab-router joins the two networks, their real agents, the control worker,
daphne, `sgwt-` namespaces; always torn down. The VMs' group admits pings, so only the router
decides. A cross-network ping works; a deny rule, a policy and a firewall group on the router's
lab-net2 interface (made through the API) stop it; the router page's live counter of the rule
rises; the trace page names the rule, the policy, its position, the router and the interface,
and the kernel proof agrees: the network node traced the router's namespace and saw the rule
drop the probe (before, a proof traced only the compute host, which let the packet out, and
read "the kernel disagreed").
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.livelab import LiveLab, log_in

pytestmark = [pytest.mark.browser, pytest.mark.kernel, pytest.mark.redis]

# Both VMs on one host: the packet leaves it, crosses the router and would come back to it.
SRC, DST = "h1-vm1", "h1-net2-vm1"
LIVE_TIMEOUT_MS = 20_000
EXPLANATION = (
    "Dropped by firewall rule deny-ping (policy lab-edge, position 1) on router lab-router "
    "interface to lab-net2"
)


@pytest.fixture(scope="module")
def lab() -> Iterator[LiveLab]:
    if os.geteuid() != 0:
        pytest.skip("kernel: needs root")
    live = LiveLab(hosts=1, vms=1, net2_vms=1)
    try:
        yield live.start()
    finally:
        live.close()


def _lab_net2_interface(lab: LiveLab) -> str:
    """The router's port on lab-net2's IPv4 subnet (the destination VM's side)."""
    destination = ipaddress.ip_network(lab.stack.ip(DST) + "/24", strict=False)
    for port in lab.stack.api("GET", "/ports")["ports"]:
        if port["device_id"] != lab.stack.state["router_id"]:
            continue
        if any(ipaddress.ip_address(f["ip_address"]) in destination for f in port["fixed_ips"]):
            return str(port["id"])
    raise AssertionError("the router has no interface on lab-net2's IPv4 subnet")


def _deny_pings_on_lab_net2(lab: LiveLab) -> dict[str, str]:
    """deny-ping in policy lab-edge, in firewall group lab-fw on the lab-net2 interface (both
    directions), through the FWaaS API."""
    stack, project = lab.stack, lab.stack.state["project_id"]
    rule = stack.api("POST", "/fwaas/firewall_rules", {"firewall_rule": {
        "name": "deny-ping", "protocol": "icmp", "action": "deny", "project_id": project,
    }})["firewall_rule"]  # fmt: skip
    policy = stack.api("POST", "/fwaas/firewall_policies", {"firewall_policy": {
        "name": "lab-edge", "firewall_rules": [rule["id"]], "project_id": project,
    }})["firewall_policy"]  # fmt: skip
    group = stack.api("POST", "/fwaas/firewall_groups", {"firewall_group": {
        "name": "lab-fw", "project_id": project, "ports": [_lab_net2_interface(lab)],
        "ingress_firewall_policy_id": policy["id"], "egress_firewall_policy_id": policy["id"],
    }})["firewall_group"]  # fmt: skip
    return {"rule": rule["id"], "policy": policy["id"], "group": group["id"]}


def _remove(lab: LiveLab, made: dict[str, str]) -> None:
    for kind, key in (("firewall_groups", "group"), ("firewall_policies", "policy"),
                      ("firewall_rules", "rule")):  # fmt: skip
        if key in made:
            lab.stack.api("DELETE", f"/fwaas/{kind}/{made[key]}")


def _packets(page: Any, row: str) -> int | None:
    text = page.inner_text(f"{row} [data-hits-packets]").strip().replace(",", "")
    return int(text) if text.isdigit() else None


def _trace_ping(page: Any, lab: LiveLab) -> str:
    """Trace an echo request from SRC to DST on the trace form; the kernel's result in words."""
    src, dst = lab.vm(SRC)["port_id"], lab.vm(DST)["port_id"]
    page.goto(f"{lab.url}/traces/new?source=port:{src}&destination=port:{dst}&protocol=icmp")
    page.click("button:has-text('Trace')")
    page.wait_for_url(re.compile(r"/traces/[0-9a-f-]{36}$"))
    page.wait_for_selector("[data-trace-result]:not([hidden])", timeout=60_000)
    return page.inner_text("[data-trace-result]")


def test_a_deny_rule_on_the_router_stops_the_ping_counts_it_live_and_the_trace_proves_it(
    page, lab: LiveLab, screenshot
) -> None:
    stack = lab.stack
    sg_rule = lab.add_rule(protocol="icmp")  # the VMs' group admits pings: the router decides
    made: dict[str, str] = {}
    try:
        stack.wait_in_sync()
        stack.wait("a ping across the router", lambda: lab.ping(SRC, DST, count=1), timeout=30)

        made = _deny_pings_on_lab_net2(lab)
        stack.wait("the ping stopped by the router", lambda: not lab.ping(SRC, DST, count=1),
                   timeout=30)  # fmt: skip

        # The router page: the rule's live counter rises with the next denied pings.
        log_in(page, lab)
        page.goto(f"{lab.url}/routers/{stack.state['router_id']}")
        row = f"tr[data-rule-id='{made['rule']}']"
        assert "deny-ping" in page.inner_text(row)
        page.wait_for_function(
            "sel => /^[0-9,]+$/.test(document.querySelector(sel).textContent.trim())",
            arg=f"{row} [data-hits-packets]",
            timeout=LIVE_TIMEOUT_MS,
        )
        before = _packets(page, row)
        assert before is not None
        assert not lab.ping(SRC, DST, count=3)
        page.wait_for_function(
            "([sel, n]) => Number(document.querySelector(sel).textContent.replace(/,/g, '')) >= n",
            arg=[f"{row} [data-hits-packets]", before + 3],
            timeout=LIVE_TIMEOUT_MS,
        )
        screenshot("fwaas-01-router-rule-counter")

        # The trace names the rule where it stopped the packet; the kernel's proof agrees.
        result = _trace_ping(page, lab)
        assert page.get_attribute(".verdict-card", "data-static-verdict") == "DROP"
        assert page.inner_text("[data-explanation]").strip() == EXPLANATION
        assert "kernel agreed" in result.lower(), result
        assert "disagreed" not in result.lower(), result
        node = stack.state["network_nodes"][0]
        # Live ("kernel DROP at <node> (…)") or redrawn once finished ("<node> dropped the
        # packet at “…”"): the network node decided, by the rule.
        assert node in result, result
        assert "firewall rule deny-ping (policy lab-edge, position 1)" in result, result
        packets = page.locator("[data-trace-packets] .packet")
        packets.first.wait_for(timeout=LIVE_TIMEOUT_MS)
        assert packets.filter(has_text=node).filter(has_text="router lab-router").count() >= 1
        screenshot("fwaas-02-trace-router-drop-proven")
    finally:
        _remove(lab, made)
        lab.delete_rule(sg_rule)


def test_a_rule_moved_on_the_policy_page_is_followed_to_the_network_node_and_counters_are_pushed(
    page, lab: LiveLab, screenshot
) -> None:
    """Issue 16 with issue 14's "say where it went": the policy page's move button, then the
    box says the network node applied the change (its router revision, how long it took); the
    router page's counters arrive on its socket, not by polling."""
    stack, project = lab.stack, lab.stack.state["project_id"]
    made: dict[str, str] = {}
    extra: str | None = None
    try:
        made = _deny_pings_on_lab_net2(lab)
        extra = stack.api("POST", "/fwaas/firewall_rules", {"firewall_rule": {
            "name": "allow-2222", "protocol": "tcp", "destination_port": "2222",
            "action": "allow", "project_id": project,
        }})["firewall_rule"]["id"]  # fmt: skip
        stack.api("PUT", f"/fwaas/firewall_policies/{made['policy']}/insert_rule",
                  {"firewall_rule_id": extra, "insert_after": made["rule"]})  # fmt: skip
        node = stack.state["network_nodes"][0]

        log_in(page, lab)
        page.goto(f"{lab.url}/firewall-policies/{made['policy']}")
        page.click("button[aria-label='Move deny-ping down']")
        sentence = page.locator("[data-delivery-sentence]")
        sentence.wait_for()
        assert "moved" in page.inner_text(".delivery-what")
        # Drawn pending or applied; live.js follows the node's router-apply to "applied".
        page.wait_for_function(
            "([sel, node]) => new RegExp(`^Applied on ${node} \\\\(revision \\\\d+\\\\)`)"
            ".test(document.querySelector(sel).textContent.trim())",
            arg=["[data-delivery-sentence]", node],
            timeout=LIVE_TIMEOUT_MS,
        )
        words = sentence.inner_text()
        took = r"( in [\d.]+ s| in under 0\.1 s)?"
        assert re.fullmatch(rf"Applied on {node} \(revision \d+\){took}\.", words), words
        screenshot("fwaas-03-policy-change-applied-on-node")

        # The router page: counters pushed on its socket; the page never polls while it is open.
        polled: list[str] = []
        page.on("request", lambda r: polled.append(r.url) if r.url.endswith("/hits") else None)
        page.goto(f"{lab.url}/routers/{stack.state['router_id']}")
        row = f"tr[data-rule-id='{made['rule']}']"
        page.wait_for_function(
            "sel => /^read /.test(document.querySelector(sel).textContent.trim())",
            arg="[data-hits-state]",
            timeout=LIVE_TIMEOUT_MS,
        )
        before = _packets(page, row) or 0
        assert not lab.ping(SRC, DST, count=2)
        page.wait_for_function(
            "([sel, n]) => Number(document.querySelector(sel).textContent.replace(/,/g, '')) >= n",
            arg=[f"{row} [data-hits-packets]", before + 2],
            timeout=LIVE_TIMEOUT_MS,
        )
        assert polled == [], polled
    finally:
        _remove(lab, made)
        if extra:
            stack.api("DELETE", f"/fwaas/firewall_rules/{extra}")
