"""Topology building against a FakeRunner: names, shapes and cleanup, without a kernel."""

from __future__ import annotations

import pytest

from sgweb.kernel.topology import (
    BRIDGE_PER_PORT,
    HostSpec,
    TopologySpec,
    VmSpec,
    build,
    host_spec_for_ports,
)
from tests.fakerunner import FakeRunner

PORT = "6e3f2eda-3230-45e8-9be5-f382af5b83ea"


def _spec(shape: str) -> TopologySpec:
    vm = VmSpec("vm1", PORT, "fa:16:3e:f3:1e:c0", ("192.0.2.14/24", "2001:db8::14/64"))
    return TopologySpec("sgwt-unit-", (HostSpec("host1", (vm,), shape),))  # type: ignore[arg-type]


def test_a_qbr_host_gets_neutrons_device_names_and_per_namespace_sysctls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sgweb.kernel.topology.wait_until_up", lambda topology: None)
    runner = FakeRunner()
    topology = build(_spec(BRIDGE_PER_PORT), runner)
    commands = [" ".join(call.argv) for call in runner.calls]
    assert "ip netns add sgwt-unit-host1" in commands
    assert any("tap6e3f2eda-32 type veth peer name eth0 netns sgwt-unit-vm1" in c for c in commands)
    assert any("qvb6e3f2eda-32 type veth peer name qvo6e3f2eda-32" in c for c in commands)
    sysctls = [call for call in runner.calls if call.argv[0] == "sysctl"]
    assert all(call.netns is not None for call in sysctls)  # never the root namespace
    host_sysctl = next(call for call in sysctls if call.netns == "sgwt-unit-host1")
    assert "net.bridge.bridge-nf-call-iptables=1" in host_sysctl.argv
    assert topology.host_ns_of("vm1") == "sgwt-unit-host1"


def test_an_overlong_tap_name_is_refused_before_anything_is_left_behind() -> None:
    runner = FakeRunner()
    vm = VmSpec("vm1", PORT, "fa:16:3e:f3:1e:c0", (), device="tap" + "x" * 13)
    with pytest.raises(ValueError, match="IFNAMSIZ"):
        build(TopologySpec("sgwt-unit-", (HostSpec("host1", (vm,)),)), runner)
    created = [call.argv[-1] for call in runner.calls if call.argv[:3] == ("ip", "netns", "add")]
    assert created  # the fabric and host were made first ...
    # ... and the teardown looked for every namespace of the prefix to delete (none exist here)
    assert not any(call.argv[:3] == ("ip", "netns", "add") and "vm1" in call.argv[-1]
                   for call in runner.calls)  # fmt: skip


def test_bare_addresses_get_host_prefixes() -> None:
    host = host_spec_for_ports(
        "h", [("vm1", PORT, "fa:16:3e:00:00:01", ("192.0.2.5", "2001:db8::5"))]
    )
    assert host.vms[0].addresses == ("192.0.2.5/32", "2001:db8::5/128")
    assert host.vms[0].tap == "tap6e3f2eda-32"
