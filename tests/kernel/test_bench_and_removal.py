from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.kernel import BENCH_PREFIX, run_kernel_benchmark
from sgweb.firewall.compiler import compile_host
from sgweb.firewall.incremental import diff
from sgweb.kernel.apply import HostFirewall, removal_delta
from sgweb.kernel.runner import SubprocessRunner
from sgweb.kernel.topology import list_namespaces
from tests.kernel.scenarios import make_ports, random_state

pytestmark = pytest.mark.kernel


def test_removing_a_full_apply_leaves_nothing_of_ours(
    kernel_runner: SubprocessRunner, scratch_netns: str
) -> None:
    kernel_runner.run(["iptables", "-A", "FORWARD", "-j", "ACCEPT"], netns=scratch_netns)
    firewall = HostFirewall(kernel_runner, scratch_netns)
    compiled = compile_host(random_state(5, make_ports(4)))
    firewall.apply(diff(None, compiled, include_builtin_jumps=True)).raise_for_error()
    assert firewall.save(4)
    firewall.apply(removal_delta(compiled)).raise_for_error()
    assert firewall.save(4) == firewall.save(6) == ""
    assert firewall.ipset_names() == []
    # what was not ours is still there
    forward = kernel_runner.run(["iptables", "-S", "FORWARD"], netns=scratch_netns).stdout
    assert "-A FORWARD -j ACCEPT" in forward


def _tiny_scenario() -> dict:
    group = "5e5e5e5e-0000-4000-8000-00000000000a"
    return {
        "security_groups": [
            {
                "id": group,
                "rules": [
                    {"id": "r1", "direction": "ingress", "ethertype": "IPv4",
                     "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
                     "remote_group_id": group},
                ],
            }
        ],
        "ports": [
            {"id": f"{n:08x}-0000-4000-8000-000000000000", "mac_address": f"fa:16:3e:00:02:{n:02x}",
             "fixed_ips": [f"192.0.2.{n}"], "security_groups": [group]}
            for n in range(10, 20)
        ],
    }  # fmt: skip


def test_the_kernel_benchmark_reports_every_figure_and_cleans_up(
    kernel_runner: SubprocessRunner, tmp_path: Path
) -> None:
    scenario = tmp_path / "tiny.json"
    scenario.write_text(json.dumps(_tiny_scenario()))
    result = run_kernel_benchmark(scenario, runs=1, runner=kernel_runner)
    for key in ("full_apply_s", "plain_restore_s", "full_vs_plain", "compile_s"):
        assert result[key] > 0
    assert result["group_change"]["ports_using"] == 10
    assert result["group_change"]["rule_lines"] > 0
    assert result["membership_change"]["iptables_lines"] == 0
    assert list_namespaces(f"{BENCH_PREFIX}{os.getpid()}-") == []
