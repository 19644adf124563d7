"""The `trace` command: text walk and --json, through the real `python -m sgweb.firewall` parser
and through a bare argparse parser (register must work on any subparsers)."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from sgweb.firewall.__main__ import main as firewall_main
from sgweb.firewall.trace.cli import register

WEB_ID = "11111111-aaaa-4bbb-8ccc-000000000001"
PORT_ID = "aaaaaaaa-1111-4222-8333-444444444444"
OTHER_ID = "bbbbbbbb-1111-4222-8333-444444444444"
SCENARIO = {
    "security_groups": [
        {
            "id": WEB_ID,
            "name": "web",
            "rules": [
                {
                    "id": "r-ssh",
                    "direction": "ingress",
                    "ethertype": "IPv4",
                    "protocol": "tcp",
                    "port_range_min": 22,
                    "port_range_max": 22,
                    "remote_ip_prefix": "198.51.100.0/24",
                    "remote_group_id": None,
                },
            ],
        },
    ],
    "ports": [
        {
            "id": PORT_ID,
            "host": "compute1",
            "mac_address": "fa:16:3e:00:00:10",
            "fixed_ips": ["192.0.2.10"],
            "dhcp_servers": ["192.0.2.2"],
            "security_groups": [WEB_ID],
        },
        {
            "id": OTHER_ID,
            "host": "compute2",
            "mac_address": "fa:16:3e:00:00:20",
            "fixed_ips": ["192.0.2.20"],
            "security_groups": [WEB_ID],
        },
    ],
}


@pytest.fixture
def scenario(tmp_path: Path) -> str:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(SCENARIO))
    return str(path)


def test_text_output_walks_the_chains_and_ends_with_verdict_and_sentence(scenario, capsys):
    code = firewall_main(
        [
            "trace",
            scenario,
            "--host",
            "compute1",
            "--src",
            "198.51.100.7",
            "--to-port",
            PORT_ID,
            "--protocol",
            "tcp",
            "--dport",
            "22",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "filter:neutron-openvswi-iaaaaaaaa-1" in out
    assert "match -A neutron-openvswi-iaaaaaaaa-1 -s 198.51.100.0/24 -p tcp" in out
    lines = out.strip().splitlines()
    assert lines[-2] == "verdict: ACCEPT"
    assert lines[-1] == (
        "why: allowed at port " + PORT_ID + " ingress by rule r-ssh (tcp/22 from "
        "198.51.100.0/24) of group web"
    )


def test_json_output_has_the_contract_keys(scenario, capsys):
    code = firewall_main(
        [
            "trace",
            scenario,
            "--host",
            "compute1",
            "--src",
            "203.0.113.5",
            "--to-port",
            PORT_ID,
            "-p",
            "6",
            "--dport",
            "22",
            "--json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {"verdict", "explanation", "reason", "path", "matched"} <= set(data)
    assert data["verdict"] == "DROP" and data["reason"] == "default-drop"
    assert data["details"]["nearest_rule_id"] == "r-ssh"
    assert data["matched"][-1]["chain"] == "neutron-openvswi-sg-fallback"
    assert all(step["table"] in ("raw", "filter") for step in data["path"])


def test_from_port_fills_source_address_mac_and_tap(scenario, capsys):
    firewall_main(
        [
            "trace",
            scenario,
            "--host",
            "compute1",
            "--from-port",
            PORT_ID,
            "--dst",
            "198.51.100.1",
            "-p",
            "udp",
            "--sport",
            "67",
            "--dport",
            "68",
            "--json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert data["packet"]["src"] == "192.0.2.10"
    assert data["packet"]["src_mac"] == "fa:16:3e:00:00:10"
    assert data["packet"]["physdev_in"] == "tapaaaaaaaa-11"
    assert data["reason"] == "dhcp-server"


def test_spoofed_source_via_physdev_in_is_explained(scenario, capsys):
    firewall_main(
        [
            "trace",
            scenario,
            "--host",
            "compute1",
            "--physdev-in",
            "tapaaaaaaaa-11",
            "--physdev-out",
            "qvbaaaaaaaa-11",
            "--src",
            "192.0.2.99",
            "--dst",
            "198.51.100.1",
            "-p",
            "tcp",
            "--dport",
            "80",
        ]
    )
    out = capsys.readouterr().out
    assert (
        "by anti-spoofing: source 192.0.2.99 is not one of the port's addresses (192.0.2.10)" in out
    )


def test_register_works_on_a_plain_argparse_parser(scenario):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "trace",
            scenario,
            "--host",
            "compute1",
            "--src",
            "198.51.100.7",
            "--to-port",
            PORT_ID,
            "-p",
            "icmp",
            "--state",
            "established",
        ]
    )
    out = io.StringIO()
    assert args.handler(args, out) == 0
    assert "as part of an established connection" in out.getvalue()


def test_a_port_of_another_host_is_refused_with_a_message(scenario, capsys):
    code = firewall_main(
        ["trace", scenario, "--host", "compute1", "--to-port", OTHER_ID, "--src", "198.51.100.7"]
    )
    assert code == 2
    assert "no such port on this host" in capsys.readouterr().err


def test_reply_option_traces_the_answer_as_established(scenario, capsys):
    firewall_main(
        [
            "trace",
            scenario,
            "--host",
            "compute1",
            "--src",
            "198.51.100.7",
            "--to-port",
            PORT_ID,
            "-p",
            "tcp",
            "--sport",
            "40000",
            "--dport",
            "22",
            "--reply",
            "--json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    reply = data["reply"]
    assert reply["packet"]["sport"] == 22 and reply["packet"]["dport"] == 40000
    assert reply["packet"]["physdev_in"] == "tapaaaaaaaa-11"
    assert (reply["verdict"], reply["reason"]) == ("ACCEPT", "established")


def test_policy_option_makes_unfiltered_traffic_hit_the_chain_policy(scenario, capsys):
    code = firewall_main(
        [
            "trace",
            scenario,
            "--host",
            "compute1",
            "--src",
            "203.0.113.1",
            "--dst",
            "198.51.100.1",
            "--physdev-in",
            "eth1",
            "--physdev-out",
            "eth2",
            "--policy",
            "forward=drop",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "policy DROP" in out and out.strip().splitlines()[-2] == "verdict: DROP"
    assert firewall_main(["trace", scenario, "--policy", "FORWARD"]) == 2


def test_an_sctp_init_ack_of_no_association_is_traced_as_invalid(scenario, capsys):
    packet = ["trace", scenario, "--host", "compute1", "--src", "198.51.100.1", "--to-port",
              PORT_ID, "-p", "sctp", "--dport", "22", "--json"]  # fmt: skip
    firewall_main(packet)
    assert json.loads(capsys.readouterr().out)["ct_state"] == "NEW"  # an INIT
    firewall_main([*packet, "--sctp-chunk", "INIT-ACK"])
    data = json.loads(capsys.readouterr().out)
    assert data["packet"]["sctp_chunk"] == "INIT_ACK"
    assert (data["verdict"], data["reason"], data["ct_state"]) == ("DROP", "invalid", "INVALID")
    assert "SCTP INIT-ACK that belongs to no association" in data["explanation"]
