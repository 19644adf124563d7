"""A router's full apply keeps its IPv6 counters (issue 12), proven by real packets across it.

The router's rules are ours alone, so a full apply (start-up, drift repair) restores its filter
table whole; ip6tables-nft ignores the counts handed to it, and the write-back over netlink
(`sgweb.kernel.nftcarry`) puts back every one, the built-in FORWARD chain's jumps included,
and the REJECT rule's (an xt target, checked against the rule's protocol like the matches).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from sgweb.firewall.fwaas.compiler import compile_router
from sgweb.firewall.fwaas.model import FirewallRule
from sgweb.firewall.fwaas.trace import REJECTED
from sgweb.kernel.readback import save_command
from tests.firewall.fwaas.example import APP_GROUP_OBJ, PROD_EGRESS, STATE, WEB_GROUP_OBJ
from tests.kernel.test_fwaas_kernel import APP_IP6, RouterLab, lab  # noqa: F401 (the fixture)

pytestmark = pytest.mark.kernel

REJECT_V6_SSH = FirewallRule(id="r6", name="reject-v6-ssh", ip_version=6, protocol="tcp",
                             destination_port="22", action="reject")  # fmt: skip


def ipv6_counts(router: RouterLab) -> list[str]:
    saved = router.runner.run([save_command(6), "-c", "-t", "filter"], netns=router.router).stdout
    return [line for line in saved.splitlines() if line.startswith("[")]


def test_a_routers_full_apply_keeps_every_ipv6_counter_real_packets_moved(
    lab: RouterLab,  # noqa: F811
) -> None:
    policy = replace(PROD_EGRESS, rules=(*PROD_EGRESS.rules, REJECT_V6_SSH))
    groups = (APP_GROUP_OBJ, replace(WEB_GROUP_OBJ, egress_policy=policy))
    compiled = compile_router(replace(STATE, firewall_groups=groups))
    lab.firewall.apply(compiled).raise_for_error()
    for _ in range(2):
        assert lab.ping(lab.web, APP_IP6).ok
    assert lab.connect(lab.web, APP_IP6, 22).verdict == REJECTED
    hits = {h.origin.rule_name: h.counter.packets for h in lab.firewall.rule_hits(compiled)}
    assert hits["allow-v6-ping"] >= 2
    assert hits["reject-v6-ssh"] >= 1
    before = ipv6_counts(lab)
    assert all(not line.startswith("[0:0] -A FORWARD") for line in before)  # its jumps too
    report = lab.firewall.apply(compiled)  # a full apply: the table restored whole
    assert report.ok, report.error
    assert not report.warnings
    assert ipv6_counts(lab) == before
