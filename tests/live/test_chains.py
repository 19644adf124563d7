"""The `chains` message a port page starts from: the port's chains, each rule labelled."""

from __future__ import annotations

from sgweb.live.chains import port_chains


def test_a_port_shows_its_ingress_egress_and_anti_spoofing_chains_for_both_families(world):
    message = port_chains(world.web)
    assert message["type"] == "chains"
    assert message["port_id"] == str(world.web.pk)
    assert message["host"] == "compute1"
    assert message["device"] == world.web.device
    roles = {(chain["family"], chain["role"]) for chain in message["chains"]}
    assert roles == {(f, r) for f in (4, 6) for r in ("ingress", "egress", "anti-spoofing")}


def test_each_rule_is_labelled_in_security_group_words(world):
    message = port_chains(world.web)
    ingress = next(c for c in message["chains"] if c["family"] == 4 and c["role"] == "ingress")
    labels = [rule["label"] for rule in ingress["rules"]]
    assert labels[0] == "drop INVALID packets"
    assert ingress["rules"][0]["text"].startswith(f"-A {ingress['name']} ")
    ssh = next(rule for rule in ingress["rules"] if rule["rule_id"] == world.ssh_rule_id)
    assert ssh["label"] == (
        f"allow tcp/22 from 198.51.100.0/24 (rule {world.ssh_rule_id[:8]} of web)"
    )
    assert ssh["group_name"] == "web" and ssh["kind"] == "sg-rule"
    assert [r["position"] for r in ingress["rules"]] == list(range(1, len(ingress["rules"]) + 1))
    assert ingress["rules"][-1]["label"] == "default drop"


def test_anti_spoofing_rules_name_the_address_and_mac(world):
    message = port_chains(world.web)
    spoof = next(c for c in message["chains"] if c["family"] == 4 and c["role"] == "anti-spoofing")
    address = world.web.fixed_ips.first().ip_address
    mac = world.web.mac_address.upper()
    assert spoof["rules"][0]["label"] == f"anti-spoofing: {address} from {mac}"


def test_a_port_without_a_host_has_no_chains(world, alice):
    world.web.host = None
    world.web.save()
    assert port_chains(world.web)["chains"] == []
