"""`python -m bench.droplog_e2e [--drops 50] [--every 0.7]` : a dropped packet to the browser.

Brings up the browser tests' live lab (tests/browser/livelab.py: one lab host with two VMs in
`sgwt-` namespaces, its real agent with ulogd2, the control worker, Redis, a real daphne), logs
DROP events of VM 2's port through the Neutron logging API, opens /ws/drops as a logged-in
admin (bench/wsclient.py) and sends D blocked pings from VM 1, one every `--every` seconds. For
each it measures until the websocket carries that flow grown by the new packet:

* from the packet's time (the flow's `last_seen`, the agent's stamp of the logged packet) to
  the websocket's message: the agent's send interval, Celery, the control worker's explanation
  and storage, the dispatcher, Channels, daphne;
* from starting the probe process in VM 1 (adds a Python start in the VM's namespace).

Prints p50/p95/max as JSON with the load average (target p95 <= 2 s). Nothing is asserted; the
lab is torn down at the end, also on failure (the root namespace is never touched).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from bench.wsclient import WsClient
from tests.browser.livelab import DASHBOARD_USER, LiveLab
from tests.lab.stack import PROBE

SRC, DST = "h1-vm1", "h1-vm2"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    return {
        "p50": round(_percentile(values, 0.5), 3),
        "p95": round(_percentile(values, 0.95), 3),
        "max": round(max(values), 3),
    }


def _session_cookie(lab: LiveLab) -> str:
    out = lab.stack.manage(
        "shell", "-c",
        "from django.contrib.auth import get_user_model; "
        "from django.contrib.sessions.backends.db import SessionStore; "
        f"u = get_user_model().objects.get(username={DASHBOARD_USER!r}); s = SessionStore(); "
        "s['_auth_user_id'] = str(u.pk); "
        "s['_auth_user_backend'] = 'django.contrib.auth.backends.ModelBackend'; "
        "s['_auth_user_hash'] = u.get_session_auth_hash(); s.create(); print(s.session_key)",
    )  # fmt: skip
    return f"sessionid={out.strip().splitlines()[-1]}"


def _blocked_ping(lab: LiveLab) -> subprocess.Popen[bytes]:
    netns = lab.vm(SRC)["netns"]
    argv = ["ip", "netns", "exec", netns, sys.executable, "-I", PROBE, "icmp",
            lab.stack.ip(DST), "--count", "1", "--timeout", "0.3"]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_grown(
    client: WsClient, src: str, dst: str, seen_last: float, timeout: float
) -> tuple[float, dict[str, Any]] | None:
    """The first `drop-flows` flow src -> dst whose last packet is newer than `seen_last`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = client.receive(timeout=max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            return None
        if message.get("type") != "drop-flows":
            continue
        arrived = time.time()
        for flow in message.get("flows", []):
            if flow["src"] == src and flow["dst"] == dst and flow["last_seen"] > seen_last:
                return arrived, flow
    return None


def measure(lab: LiveLab, drops: int, every: float) -> dict[str, Any]:
    stack = lab.stack
    body = {"resource_type": "security_group", "target_id": stack.vm(DST)["port_id"],
            "event": "DROP", "project_id": stack.state["project_id"]}  # fmt: skip
    stack.api("POST", "/log/logs", {"log": body})
    stack.wait_in_sync()
    port = int(lab.url.rsplit(":", 1)[1])
    client = WsClient("127.0.0.1", port, "/ws/drops", cookie=_session_cookie(lab))
    src, dst = stack.ip(SRC), stack.ip(DST)
    from_packet: list[float] = []
    from_probe: list[float] = []
    missed = 0
    seen_last = 0.0
    try:
        for _ in range(drops):
            started = time.time()
            probe = _blocked_ping(lab)
            got = _wait_grown(client, src, dst, max(seen_last, started - 0.05), timeout=10)
            probe.wait(timeout=10)
            if got is None:
                missed += 1
                continue
            arrived, flow = got
            seen_last = flow["last_seen"]
            from_packet.append(arrived - flow["last_seen"])
            from_probe.append(arrived - started)
            time.sleep(max(0.0, every - (time.time() - started)))
    finally:
        client.close()
    return {
        "drops": drops,
        "received": len(from_packet),
        "missed": missed,
        "packet_to_websocket_s": _summary(from_packet),
        "probe_start_to_websocket_s": _summary(from_probe),
        "target_p95_s": 2.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=50)
    parser.add_argument("--every", type=float, default=0.7, help="seconds between blocked pings")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench.droplog_e2e: needs root (namespaces)")
    lab = LiveLab(hosts=1, vms=2)
    try:
        lab.start()
        with open("/proc/loadavg") as loadavg:
            load_before = loadavg.read().split()[:3]
        result = measure(lab, args.drops, args.every)
        with open("/proc/loadavg") as loadavg:
            result["loadavg_before"] = load_before
            result["loadavg_after"] = loadavg.read().split()[:3]
        result["cpus"] = os.cpu_count()
        print(json.dumps(result, indent=2))
    finally:
        lab.close()


if __name__ == "__main__":
    main()
