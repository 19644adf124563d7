"""Does every lab host's kernel hold the state built from the database? (run in the stack)

`SCRIPT` runs inside `manage.py shell` with the stack's environment (its database, its Redis):
for every host with a namespace it builds the desired state from the database, compiles it, and
compares it with the namespace's kernel (chains of ours, their rule counts, the built-in jumps,
every ipset's members: `worker.drift`) and with the digest the host's agent says it applied.
It prints one line, ``RESULT {host: {...}}``.
"""

from __future__ import annotations

import json
from typing import Any

SCRIPT = """
import json
from sgweb.firewall import manifest
from sgweb.firewall.compiler import compile_host
from sgweb.hostsync.desired_state import host_state
from sgweb.hostsync.status import host_liveness
from sgweb.kernel.apply import HostFirewall
from sgweb.kernel.runner import default_runner
from sgweb.networks.models import Host
from worker import drift

out = {}
for host in Host.objects.exclude(netns=None).exclude(netns=""):
    state = host_state(host.name)
    compiled = compile_host(state)
    kernel = HostFirewall(default_runner(), host.netns)
    findings = drift.DriftFindings()
    for family in (4, 6):
        drift.compare_iptables(compiled, family, kernel.save(family), findings)
    sets = [ipset.name for ipset in compiled.ipsets]
    if sets:
        drift.compare_ipsets(compiled, kernel.save_ipsets(sets), findings)
    beat = host_liveness([host.name])[host.name]
    icmp = any(
        rule.protocol == "icmp" and rule.direction == "ingress"
        for group in state.security_groups for rule in group.rules
    )
    out[host.name] = {
        "kernel": {k: v for k, v in findings.as_dict().items() if v},
        "digest": manifest.state_digest(state),
        "agent_digest": beat.applied_digest,
        "icmp_allowed": icmp,
    }
print("RESULT " + json.dumps(out, sort_keys=True))
"""


def parse(output: str) -> dict[str, Any]:
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def divergences(result: dict[str, Any]) -> list[str]:
    """What still differs, in words (empty: every host converged)."""
    problems = []
    for host, seen in sorted(result.items()):
        if seen["kernel"]:
            problems.append(f"{host}: kernel differs from the database: {seen['kernel']}")
        if seen["agent_digest"] != seen["digest"]:
            problems.append(
                f"{host}: agent applied {str(seen['agent_digest'])[:12]}, "
                f"database says {seen['digest'][:12]}"
            )
    return problems
