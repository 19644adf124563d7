"""Scenario JSON loading and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sgweb.firewall import FirewallError
from sgweb.firewall.__main__ import main
from sgweb.firewall.scenario import load_scenario

G1 = "aaaaaaaa-1111-4111-8111-000000000001"
DOC = {
    "security_groups": [
        {
            "id": G1,
            "name": "web",
            "rules": [
                {
                    "id": "r1",
                    "direction": "ingress",
                    "ethertype": "IPv4",
                    "protocol": 6,
                    "port_range_min": 22,
                    "port_range_max": 22,
                    "remote_group_id": G1,
                },
            ],
        }
    ],
    "ports": [
        {
            "id": "p2000000-0000-4000-8000-000000000002",
            "host": "compute2",
            "mac_address": "fa:16:3e:00:00:02",
            "fixed_ips": ["192.0.2.20"],
            "security_groups": [G1],
        },
        {
            "id": "p1000000-0000-4000-8000-000000000001",
            "host": "compute1",
            "mac_address": "fa:16:3e:00:00:01",
            "fixed_ips": ["192.0.2.10"],
            "security_groups": [G1],
            "allowed_address_pairs": [{"ip_address": "203.0.113.5"}],
        },
        {
            "id": "p3000000-0000-4000-8000-000000000003",
            "mac_address": "fa:16:3e:00:00:03",
            "fixed_ips": ["192.0.2.30"],
        },
    ],
}


def test_host_selection_keeps_that_hosts_ports_and_hostless_ones() -> None:
    state = load_scenario(DOC, host="compute1")
    assert [p.id[:2] for p in state.ports] == ["p1", "p3"]
    assert state.ports[0].device == "tapp1000000-00"
    assert state.host == "compute1"


def test_remote_group_members_come_from_every_port_of_the_document_by_port_id() -> None:
    state = load_scenario(DOC, host="compute1")
    assert state.members(G1) == ("192.0.2.10/32", "203.0.113.5/32", "192.0.2.20/32")


def test_numeric_protocols_are_accepted_and_normalised() -> None:
    assert load_scenario(DOC).security_groups[0].rules[0].protocol == "tcp"


def test_a_malformed_document_is_a_firewall_error() -> None:
    with pytest.raises(FirewallError, match="malformed"):
        load_scenario({"ports": [{"mac_address": "fa:16:3e:00:00:01"}]})
    with pytest.raises(FirewallError, match="not valid JSON"):
        load_scenario("{nope")


def _write(tmp_path: Path, document: object) -> str:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_compile_prints_restore_input_for_the_family(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path, DOC)
    assert main(["compile", path, "--host", "compute1", "--family", "6"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("*raw\n") and out.endswith("COMMIT\n")
    assert "tapp1000000-00" in out and "tapp2000000-00" not in out
    assert "ipv6-icmp" in out


def test_ipsets_prints_ipset_restore_input(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["ipsets", _write(tmp_path, DOC), "--host", "compute1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        "create IPv4aaaaaaaa-1111-4111-8 hash:net family inet hashsize 1024 maxelem 65536 -exist"
    )


def test_compat_article_gives_the_articles_dhcp_order_on_compile_ipsets_and_trace(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys
) -> None:
    path = _write(tmp_path, DOC)
    safe_line = "-s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 --dport 67 -j RETURN"
    assert main(["compile", path, "--host", "compute1"]) == 0
    assert safe_line in capsys.readouterr().out
    assert main(["compile", path, "--host", "compute1", "--compat", "article"]) == 0
    assert safe_line not in capsys.readouterr().out
    assert main(["ipsets", path, "--host", "compute1", "--compat", "article"]) == 0
    assert "create IPv4aaaaaaaa" in capsys.readouterr().out
    # A spoofed DHCP request: the article's layout lets it out, the default stops it.
    spoofed = [
        "trace", path, "--host", "compute1", "--from-port", "p1000000-0000-4000-8000-000000000001",
        "--src", "192.0.2.99", "--dst", "192.0.2.20", "-p", "udp", "--sport", "68",
        "--dport", "67", "--json",
    ]  # fmt: skip
    assert main(spoofed) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "DROP"
    assert main([*spoofed, "--compat", "article"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "ACCEPT"
    with pytest.raises(SystemExit):  # argparse refuses it with the choices
        main(["compile", path, "--compat", "linuxbridge"])


def test_errors_are_one_line_on_stderr_with_exit_status_2(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = json.loads(json.dumps(DOC))
    bad["security_groups"][0]["rules"][0]["port_range_min"] = 70000
    assert main(["compile", _write(tmp_path, bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "security group rule r1, field port_range_min" in err


def test_bench_prints_json_figures(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from bench.compile import main as bench_main

    assert bench_main([_write(tmp_path, DOC), "--runs", "1"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for key in ("compile_s", "update_s", "member_s", "rules", "ipsets"):
        assert key in figures
    assert figures["member_delta"]["iptables_rule_lines"] == 0
