"""The article's worked examples (3.3.1-3.3.4), reproduced line for line, comments aside."""

from __future__ import annotations

from sgweb.firewall.compiler import compile_host
from sgweb.firewall.render import render_ipsets, render_iptables
from tests.firewall import article


def _our_lines(text: str, prefix: str = "-A neutron-openvswi-") -> list[str]:
    return [article.without_comments(line) for line in text.splitlines() if line.startswith(prefix)]


def test_port_without_groups_matches_the_article_3_3_2_line_for_line() -> None:
    text = render_iptables(compile_host(article.host_without_groups()), 4)
    filter_part = text.split("*filter", 1)[1]
    assert _our_lines(filter_part) == article.article_lines(article.SECTION_3_3_2)


def test_port_with_seven_rules_matches_the_article_3_3_3_line_for_line() -> None:
    text = render_iptables(compile_host(article.host_with_seven_rules()), 4)
    filter_part = text.split("*filter", 1)[1]
    assert _our_lines(filter_part) == article.article_lines(article.SECTION_3_3_3)


def test_chains_and_builtin_jumps_match_the_article_3_3_1() -> None:
    text = render_iptables(compile_host(article.host_without_groups()), 4)
    filter_part = text.split("*filter", 1)[1].split("COMMIT", 1)[0]
    declared = [
        "-N " + line[1:].split(" ", 1)[0] for line in filter_part.splitlines() if line[:1] == ":"
    ]
    jumps = [
        line
        for line in filter_part.splitlines()
        if line.startswith(("-A INPUT", "-A FORWARD", "-A OUTPUT", "-A neutron-filter-top"))
    ]
    assert declared + jumps == article.article_lines(article.SECTION_3_3_1)


def test_remote_group_with_ipset_matches_the_article_3_3_4() -> None:
    compiled = compile_host(article.host_with_remote_group(enable_ipset=True))
    text = render_iptables(compiled, 4)
    ingress = _our_lines(text, "-A neutron-openvswi-i6e3f2eda-3")
    assert ingress[4] == article.SECTION_3_3_4_WITH_IPSET
    assert [s.name for s in compiled.ipsets] == [article.SECTION_3_3_4_SET_NAME]
    assert render_ipsets(compiled) == (
        "create IPv4f5377a66-803d-481b-b hash:net family inet hashsize 1024 maxelem 65536 -exist\n"
        "add IPv4f5377a66-803d-481b-b 81.1.180.13 -exist\n"
        "add IPv4f5377a66-803d-481b-b 91.1.180.5 -exist\n"
    )


def test_remote_group_without_ipset_expands_to_one_rule_per_member_as_in_the_article() -> None:
    compiled = compile_host(article.host_with_remote_group(enable_ipset=False))
    text = render_iptables(compiled, 4)
    ingress = _our_lines(text, "-A neutron-openvswi-i6e3f2eda-3")
    assert tuple(ingress[4:6]) == article.SECTION_3_3_4_WITHOUT_IPSET
    assert compiled.ipsets == ()
    chain = compiled.v4.table("filter").chain("neutron-openvswi-i6e3f2eda-3")
    members = [rule.origin.member for rule in chain.rules[4:6]]
    assert members == ["91.1.180.5/32", "81.1.180.13/32"]
    assert {rule.origin.rule_id for rule in chain.rules[4:6]} == {article.SSH_FROM_REMOTE_GROUP.id}
