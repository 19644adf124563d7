from __future__ import annotations

import pytest

from sgweb.kernel.runner import SubprocessRunner
from sgweb.kernel.topology import (
    BRIDGE_PER_PORT,
    SHARED_BRIDGE,
    HostSpec,
    RemoteSpec,
    TopologySpec,
    VmSpec,
    build,
    list_namespaces,
    remove_namespaces,
    tap_name,
)

pytestmark = pytest.mark.kernel

PORT_A = "6e3f2eda-3230-45e8-9be5-f382af5b83ea"
PORT_B = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"


def two_vm_spec(prefix: str, shape: str) -> TopologySpec:
    return TopologySpec(
        prefix=prefix,
        hosts=(
            HostSpec(
                "host1",
                (
                    VmSpec("vma", PORT_A, "fa:16:3e:00:00:0a", ("192.0.2.10/24", "2001:db8::a/64")),
                    VmSpec("vmb", PORT_B, "fa:16:3e:00:00:0b", ("192.0.2.11/24", "2001:db8::b/64")),
                ),
                shape=shape,  # type: ignore[arg-type]
            ),
        ),
        remotes=(
            RemoteSpec("outside", "fa:16:3e:00:00:99", ("198.51.100.7/24", "2001:db8:1::7/64")),
        ),
    )


def test_tap_devices_are_named_as_the_compiler_names_them() -> None:
    assert tap_name(PORT_A) == "tap6e3f2eda-32"


@pytest.mark.parametrize("shape", [SHARED_BRIDGE, BRIDGE_PER_PORT])
def test_vms_and_the_outside_reach_each_other_over_ipv4_and_ipv6(
    kernel_runner: SubprocessRunner, netns_prefix: str, shape: str
) -> None:
    topology = build(two_vm_spec(netns_prefix, shape), kernel_runner)
    links = topology.run_in("host1", ["ip", "-o", "link"]).stdout
    assert "tap6e3f2eda-32" in links
    if shape == BRIDGE_PER_PORT:
        assert "qbr6e3f2eda-32" in links and "qvb6e3f2eda-32" in links
        assert "qvo6e3f2eda-32" in topology.run_in("fabric", ["ip", "-o", "link"]).stdout
    assert topology.ping("vma", "192.0.2.11")
    assert topology.ping("vma", "198.51.100.7")
    assert topology.ping("outside", "2001:db8::b")
    assert topology.ping("vmb", "2001:db8:1::7")
    assert not topology.ping("vma", "192.0.2.99")


def test_the_host_namespace_sends_bridged_frames_through_iptables_and_the_root_is_untouched(
    kernel_runner: SubprocessRunner, netns_prefix: str
) -> None:
    root_before = kernel_runner.run(["sysctl", "-n", "net.ipv4.ip_forward"]).stdout
    topology = build(two_vm_spec(netns_prefix, SHARED_BRIDGE), kernel_runner)
    for key in ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"):
        assert topology.run_in("host1", ["sysctl", "-n", key]).stdout.strip() == "1"
    assert kernel_runner.run(["sysctl", "-n", "net.ipv4.ip_forward"]).stdout == root_before


def test_tcp_and_udp_listeners_see_the_probes(
    kernel_runner: SubprocessRunner, netns_prefix: str
) -> None:
    topology = build(two_vm_spec(netns_prefix, SHARED_BRIDGE), kernel_runner)
    tcp = topology.listen("vmb", "tcp", 8080)
    udp = topology.listen("vmb", "udp", 5353, echo=True)
    try:
        assert topology.tcp_connect("vma", "192.0.2.11", 8080)
        assert topology.tcp_connect("outside", "2001:db8::b", 8080)
        assert not topology.tcp_connect("vma", "192.0.2.11", 8081)
        assert topology.udp_send("vma", "192.0.2.11", 5353, sport=68, expect_reply=True)
    finally:
        tcp_seen, udp_seen = tcp.stop().stdout, udp.stop().stdout
    assert "192.0.2.11" not in tcp_seen and "192.0.2.10" in tcp_seen
    assert '"sport": 68' in udp_seen


def test_teardown_removes_every_namespace_of_the_prefix_and_is_idempotent(
    kernel_runner: SubprocessRunner, netns_prefix: str
) -> None:
    topology = build(two_vm_spec(netns_prefix, BRIDGE_PER_PORT), kernel_runner)
    assert len(list_namespaces(netns_prefix)) == 5  # fabric, host, 2 VMs, outside
    topology.teardown()
    assert list_namespaces(netns_prefix) == []
    assert remove_namespaces(netns_prefix, kernel_runner) == []


def test_a_failed_build_leaves_no_namespace_behind(
    kernel_runner: SubprocessRunner, netns_prefix: str
) -> None:
    spec = TopologySpec(
        prefix=netns_prefix,
        hosts=(
            HostSpec("host1", (VmSpec("vm", "x" * 40, "fa:16:3e:00:00:01", (), "tap" + "x" * 20),)),
        ),
    )
    with pytest.raises(ValueError, match="IFNAMSIZ"):
        build(spec, kernel_runner)
    assert list_namespaces(netns_prefix) == []


@pytest.mark.parametrize("shape", [SHARED_BRIDGE, BRIDGE_PER_PORT])
def test_vms_plugged_in_later_are_reachable_and_unplugging_removes_only_them(
    kernel_runner: SubprocessRunner, netns_prefix: str, shape: str
) -> None:
    from sgweb.kernel.topology import add_vm, remove_vm

    topology = build(two_vm_spec(netns_prefix, shape), kernel_runner)
    port_c = "0c0c0c0c-1111-4222-8333-944445555666"
    add_vm(topology, "host1", VmSpec("vma0", port_c, "fa:16:3e:00:00:0c", ("192.0.2.12/24",)))
    assert topology.ping("outside", "192.0.2.12")
    assert topology.ping("vma0", "192.0.2.10")
    remove_vm(topology, "vma")  # must not take vma0 with it
    assert topology.ns("vma0") in list_namespaces(netns_prefix)
    assert topology.ns("vma") not in list_namespaces(netns_prefix)
    assert not topology.ping("outside", "192.0.2.10")
    assert topology.ping("outside", "192.0.2.12")
    links = topology.run_in("host1", ["ip", "-o", "link"]).stdout
    assert "tap6e3f2eda-32" not in links and "qbr6e3f2eda-32" not in links
