"""Neutron's own hybrid iptables driver on a scenario: run inside a virtualenv with neutron.

`python -m bench.neutron_compare` makes that virtualenv (var/bench/neutron-venv) and runs this
file in it with a scenario path; it prints JSON figures. Nothing touches a kernel: every command
the driver would run (iptables-restore, ipset, conntrack) is captured instead, so the figures are
Neutron's own compile work up to the restore text, the span `bench.compile` times for sgweb.

- full_s: a fresh driver prepares every port of every host of the scenario (groups' rules and
  remote-group members first, as the agent does), then applies once (renders the restore text).
- update_s: one group's rules change (a rule is added): the driver updates the group's rules
  and refreshes every port using it, then applies.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any
from unittest import mock


def _setup_neutron() -> Any:
    from neutron.agent.linux import iptables_firewall
    from neutron.conf.agent import securitygroups_rpc
    from oslo_concurrency import lockutils
    from oslo_config import cfg

    lockutils.set_defaults(tempfile.mkdtemp(prefix="sgweb-neutron-locks-"))
    securitygroups_rpc.register_securitygroups_opts()
    cfg.CONF.set_override("enable_ipset", True, "SECURITYGROUP")
    return iptables_firewall


def _captured_execute(cmd: Any, *args: Any, **kwargs: Any) -> str:
    # iptables-save readings start empty; every restore/ipset/conntrack call just succeeds.
    return ""


def _port_dict(port: dict[str, Any], by_group: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "device": port["id"],
        "id": port["id"],
        "mac_address": port["mac_address"],
        "fixed_ips": list(port.get("fixed_ips", [])),
        "security_groups": list(port.get("security_groups", [])),
        "security_group_source_groups": list(port.get("security_groups", [])),
        "allowed_address_pairs": list(port.get("allowed_address_pairs", [])),
        "port_security_enabled": port.get("port_security_enabled", True),
        "device_owner": "compute:nova",
        "network_id": port.get("network_id", "net"),
    }


def _rules(group: dict[str, Any]) -> list[dict[str, Any]]:
    rules = []
    for raw in group.get("rules", []):
        rule = {
            "direction": raw["direction"],
            "ethertype": raw.get("ethertype", "IPv4"),
            "security_group_id": group["id"],
        }
        for key in ("protocol", "port_range_min", "port_range_max", "remote_ip_prefix"):
            if raw.get(key) is not None:
                rule[key] = raw[key]
        if raw.get("remote_group_id"):
            rule["remote_group_id"] = raw["remote_group_id"]
        rules.append(rule)
    return rules


def _members(document: dict[str, Any]) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """Group -> ethertype -> [(address, mac)], the shape Neutron's RPC hands the driver."""
    members: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for port in document["ports"]:
        mac = port["mac_address"]
        addresses = [(ip, mac) for ip in port.get("fixed_ips", [])]
        addresses += [
            (pair["ip_address"], pair.get("mac_address") or mac)
            for pair in port.get("allowed_address_pairs", [])
        ]
        for group_id in port.get("security_groups", []):
            entry = members.setdefault(group_id, {"IPv4": [], "IPv6": []})
            for address, address_mac in addresses:
                entry["IPv6" if ":" in address else "IPv4"].append((address, address_mac))
    return members


def run(document: dict[str, Any], runs: int) -> dict[str, Any]:
    iptables_firewall = _setup_neutron()
    hosts: dict[str, list[dict[str, Any]]] = {}
    for port in document["ports"]:
        hosts.setdefault(port.get("host") or "", []).append(port)
    groups = {group["id"]: group for group in document["security_groups"]}
    members = _members(document)
    by_group: dict[str, list[str]] = {}

    def prepared_driver(ports: list[dict[str, Any]]) -> Any:
        driver = iptables_firewall.OVSHybridIptablesFirewallDriver()
        used = {g for port in ports for g in port.get("security_groups", [])}
        used |= {
            rule["remote_group_id"]
            for group_id in used
            for rule in _rules(groups[group_id])
            if "remote_group_id" in rule
        }
        for group_id in sorted(used):
            driver.update_security_group_rules(group_id, _rules(groups[group_id]))
            driver.update_security_group_members(group_id, members.get(group_id, {}))
        with driver.defer_apply():
            for port in ports:
                driver.prepare_port_filter(_port_dict(port, by_group))
        return driver

    full: list[float] = []
    full_cpu: list[float] = []
    update: list[float] = []
    with (
        mock.patch("neutron.agent.linux.utils.execute", _captured_execute),
        mock.patch("neutron.agent.linux.ip_lib.IPWrapper"),
    ):
        for _ in range(runs):
            gc.collect()
            started, cpu_started = time.perf_counter(), time.process_time()
            drivers = {host: prepared_driver(ports) for host, ports in hosts.items()}
            full.append(time.perf_counter() - started)
            full_cpu.append(time.process_time() - cpu_started)
            group_id = next(iter(groups))
            changed = [*_rules(groups[group_id]), {
                "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
                "port_range_min": 40000, "port_range_max": 40000,
                "remote_ip_prefix": "198.51.100.0/24", "security_group_id": group_id,
            }]  # fmt: skip
            started = time.perf_counter()
            for host, driver in drivers.items():
                driver.update_security_group_rules(group_id, changed)
                with driver.defer_apply():
                    for port in hosts[host]:
                        if group_id in port.get("security_groups", []):
                            driver.update_port_filter(_port_dict(port, by_group))
            update.append(time.perf_counter() - started)
    return {
        "neutron_full_s": round(statistics.median(full), 6),
        "neutron_full_min_s": round(min(full), 6),
        "neutron_full_cpu_s": round(statistics.median(full_cpu), 6),
        "neutron_update_s": round(statistics.median(update), 6),
        "runs": runs,
    }


if __name__ == "__main__":
    path, runs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
    try:
        with open(path) as handle:
            print(json.dumps(run(json.load(handle), runs)), flush=True)
    except BaseException:
        import traceback

        traceback.print_exc()
        os._exit(1)
    # The driver's conntrack worker thread is not a daemon: leave without waiting for it.
    os._exit(0)
