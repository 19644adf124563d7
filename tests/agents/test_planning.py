"""Pure planning: which conntrack entries to cut, and how the kernel is compared (no I/O)."""

from __future__ import annotations

import dataclasses

from sgweb.firewall import codec
from sgweb.firewall.compiler import CompileCache, compile_host
from sgweb.firewall.ir import LazyChain
from sgweb.firewall.render import render_iptables
from tests.agents.fakes import DB, FROM_DB, PORT_A, PORT_B, SSH, WEB, state
from worker import conntrack, drift
from worker.agent import rule_counts


def test_a_member_leaving_a_remote_group_cuts_only_that_address_at_the_ports_that_name_it() -> None:
    before = state(web_rules=(FROM_DB,), db_members=("192.0.2.20", "192.0.2.21"))
    after = state(web_rules=(FROM_DB,), db_members=("192.0.2.20",))
    cuts = conntrack.plan_cuts(before, after, compile_host(after))
    assert [(c.port_id, c.addresses) for c in cuts] == [(PORT_A, ("192.0.2.21",))]
    assert DB in cuts[0].why


def test_every_port_naming_a_group_gets_the_cut_of_the_members_that_left_it() -> None:
    # The members that left are worked out once per group (a group of thousands on a host
    # of many ports), and still cut at each port that names the group.
    def both_name_db(members: tuple[str, ...]):
        plain = state(web_rules=(FROM_DB,), db_members=members)
        web = plain.group(WEB)
        port_b = dataclasses.replace(plain.ports[1], security_groups=(DB, WEB))
        return dataclasses.replace(plain, ports=(plain.ports[0], port_b), security_groups=(
            web, dataclasses.replace(plain.group(DB), rules=web.rules)))  # fmt: skip

    before = both_name_db(("192.0.2.20", "192.0.2.21", "192.0.2.22/32", "203.0.113.0/28"))
    after = both_name_db(("192.0.2.20",))
    cuts = conntrack.plan_cuts(before, after, compile_host(after))
    assert [(c.port_id, c.addresses) for c in cuts] == [
        (PORT_A, ("192.0.2.21", "192.0.2.22")),
        (PORT_B, ("192.0.2.21", "192.0.2.22")),
    ]


def test_switching_port_security_back_on_cuts_all_of_the_ports_connections() -> None:
    cuts = conntrack.plan_cuts(state(port_b_security=False), state(), None)
    assert [(c.port_id, c.protocol, c.why) for c in cuts] == [
        (PORT_B, None, "port security enabled")
    ]


def test_adding_rules_cuts_nothing() -> None:
    assert conntrack.plan_cuts(state(), state(web_rules=(SSH, FROM_DB)), None) == []


def test_a_removed_single_port_rule_cuts_that_protocol_and_port_in_the_ports_zone() -> None:
    after = state()
    (cut,) = conntrack.plan_cuts(state(web_rules=(SSH,)), after, compile_host(after))
    assert (cut.addresses, cut.protocol, cut.port) == (("192.0.2.10",), "tcp", 22)
    assert cut.zone == conntrack.zones(compile_host(after)).get(PORT_A)


def saved_text(compiled, family: int) -> str:
    """What HostFirewall.save would read back from a kernel holding exactly `compiled`."""
    lines = []
    for line in render_iptables(compiled, family).splitlines():
        if line.startswith(":"):
            lines.append(line.split(" ", 1)[0] + " - [0:0]")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def test_a_kernel_holding_what_was_compiled_shows_no_drift() -> None:
    compiled = compile_host(state(web_rules=(SSH, FROM_DB)))
    findings = drift.DriftFindings()
    for family in (4, 6):
        drift.compare_iptables(compiled, family, saved_text(compiled, family), findings)
    assert not findings, findings.as_dict()


def test_a_flushed_chain_a_missing_jump_and_an_emptied_set_are_all_drift() -> None:
    compiled = compile_host(state(web_rules=(SSH, FROM_DB)))
    chain = f"neutron-openvswi-i{PORT_A[:10]}"
    kept = [
        line
        for line in saved_text(compiled, 4).splitlines()
        if not line.startswith(f"-A {chain} ") and not line.startswith("-A INPUT ")
    ]
    findings = drift.DriftFindings()
    drift.compare_iptables(compiled, 4, "\n".join(kept), findings)
    (ipset,) = [s for s in compiled.ipsets if s.members]
    drift.compare_ipsets(compiled, f"create {ipset.name} hash:net family inet\n", findings)
    assert any(chain in entry for entry in findings.changed_chains)
    assert any(entry.endswith("INPUT->neutron-openvswi-INPUT") for entry in findings.missing_jumps)
    assert findings.changed_sets and ipset.name in findings.changed_sets[0]


def test_a_rule_edited_in_place_is_drift_once_the_kernel_was_seen_correct() -> None:
    compiled = compile_host(state(web_rules=(SSH,)))
    verified = saved_text(compiled, 4)
    edited = verified.replace("--dport 22", "--dport 2222")
    findings = drift.DriftFindings()
    drift.compare_iptables(compiled, 4, edited, findings)
    assert not findings  # same shape...
    drift.compare_text(4, verified, edited, findings)
    assert findings.changed_chains  # ...but not the same rules


def test_state_copies_compare_equal_after_the_codec_round_trip() -> None:
    original = state(web_rules=(SSH, FROM_DB))
    assert codec.loads(codec.dumps(original)) == original
    changed = dataclasses.replace(original, enable_ipset=False)
    assert codec.digest(codec.dumps(changed)) != codec.digest(codec.dumps(original))


def test_cuts_after_a_cached_compile_come_from_its_record_and_spare_a_member_only_spelled_anew():
    cache = CompileCache()
    members = tuple(f"192.0.2.{i}" for i in range(20, 60))
    before = state(web_rules=(FROM_DB,), db_members=members)
    compile_host(before, cache=cache)
    # 192.0.2.21 leaves; 192.0.2.22 stays, only spelled as a host route now.
    after_members = tuple(
        sorted((*(m for m in members if m[-2:] not in ("21", "22")), "192.0.2.22/32"))
    )
    after = state(web_rules=(FROM_DB,), db_members=after_members)
    after = dataclasses.replace(after, ports=before.ports, security_groups=before.security_groups)
    compiled = compile_host(after, cache=cache)
    assert [gid for gid, *_ in compiled.member_edits] == [DB]  # the record the cuts use
    cuts = conntrack.plan_cuts(before, after, compiled)
    assert [(c.port_id, c.addresses) for c in cuts] == [(PORT_A, ("192.0.2.21",))]


def test_the_rule_counts_an_agent_reports_leave_lazy_chains_unmade() -> None:
    compiled = compile_host(state(web_rules=(SSH, FROM_DB)))
    chains = [c for f in (4, 6) for t in compiled.family(f).tables for c in t.chains if c.owned]
    lazy = [chain for chain in chains if isinstance(chain, LazyChain)]
    counts = rule_counts(compiled)
    assert lazy and not any(chain.materialized for chain in lazy)
    expected = {
        str(f): sum(len(c.rules) for t in compiled.family(f).tables for c in t.chains if c.owned)
        for f in (4, 6)
    }
    assert counts == expected
