"""Ping-trace across two lab hosts: the source's agent probes and traces its hop while the
destination's agent traces its own, and the result compares hop by hop.

Before, only the source host was traced: a flow dropped at h2's ingress looked allowed to the
kernel (h1 let it out) and the result "contradicted" a correct static DROP.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.live.test_lab_live import LiveLab, running_lab

pytestmark = [pytest.mark.kernel, pytest.mark.redis]

SRC, DST = "h1-vm1", "h2-vm2"


@pytest.fixture(scope="module")
def lab() -> Iterator[LiveLab]:
    yield from running_lab(hosts=2, vms=2)


def _trace(lab: LiveLab, **fields: Any) -> dict[str, Any]:
    body = {"source": lab.stack.vm(SRC)["port_id"],
            "destination": lab.stack.vm(DST)["port_id"], **fields}  # fmt: skip
    started = lab.http_json("POST", "/api/traces", body)["trace"]
    assert started["status"] == "running", started

    def finished() -> dict[str, Any] | None:
        trace = lab.http_json("GET", f"/api/traces/{started['id']}")["trace"]
        return trace if trace["status"] not in ("pending", "running") else None

    return lab.stack.wait("the trace to finish", finished, timeout=45, every=0.2)


def _trace_rules_left(lab: LiveLab) -> dict[str, str]:
    left = {}
    for host in (lab.stack.host_of(SRC), lab.stack.host_of(DST)):
        saved = lab.stack.runner.run(["iptables-save", "-t", "raw"], netns=host).stdout
        left[host] = "\n".join(line for line in saved.splitlines() if "TRACE" in line)
    return left


def test_a_flow_dropped_at_the_destination_host_is_traced_there_and_the_kernel_agrees(
    lab: LiveLab,
) -> None:
    h1, h2 = lab.stack.host_of(SRC), lab.stack.host_of(DST)
    assert h1 != h2
    trace = _trace(lab, protocol="tcp", port=5999)
    static, kernel = trace["static"], trace["kernel"]
    assert static["verdict"] == "DROP"
    assert trace["status"] == "done", kernel
    hops = {hop["host"]: hop for hop in kernel["hops"]}
    assert list(hops) == [h1, h2], kernel
    assert hops[h1]["traced"] and hops[h1]["kernel"] == "ACCEPT" == hops[h1]["static"], kernel
    assert hops[h2]["traced"] and hops[h2]["kernel"] == "DROP" == hops[h2]["static"], kernel
    assert kernel["kernel_verdict"] == "DROP" and kernel["agrees"] is True, kernel
    assert kernel["decided_by"] == h2 and f"hop {h2} decided" in kernel["summary"], kernel
    detail = lab.http_json("GET", f"/api/traces/{trace['id']}")["trace"]
    packet_hosts = {m["host"] for m in detail["events"] if m["type"] == "trace-packet"}
    assert packet_hosts == {h1, h2}, detail["events"]
    assert _trace_rules_left(lab) == {h1: "", h2: ""}


def test_an_allowed_ping_across_hosts_is_accepted_on_both_hops(lab: LiveLab) -> None:
    h1, h2 = lab.stack.host_of(SRC), lab.stack.host_of(DST)
    lab.add_rule(protocol="icmp")
    trace = _trace(lab, protocol="icmp")
    kernel = trace["kernel"]
    assert trace["static"]["verdict"] == "ACCEPT"
    hops = {hop["host"]: hop for hop in kernel["hops"]}
    assert [hops[h]["kernel"] for h in (h1, h2)] == ["ACCEPT", "ACCEPT"], kernel
    assert all(hop["traced"] and hop["agrees"] for hop in hops.values()), kernel
    assert kernel["kernel_verdict"] == "ACCEPT" and kernel["agrees"] is True, kernel
    assert kernel["probe_ok"] is True, kernel
    assert _trace_rules_left(lab) == {h1: "", h2: ""}
