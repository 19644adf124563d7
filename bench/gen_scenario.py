#!/usr/bin/env python3
"""Generate a deterministic security-group scenario JSON for harness.py.

Addresses come only from documentation ranges (192.0.2.0/24,
198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32); when there are too many
ports for 192.0.2.0/24 the fixed IPv4 addresses come from 100.64.0.0/10.

Usage: gen_scenario.py --ports N [--groups 10] [--rules 10] [--seed 1]
                       [--psec-off K] [--no-ipset] [--no-v6] -o out.json
"""

import argparse
import ipaddress
import json
import random
import uuid

NAMES = [
    "web",
    "db",
    "ssh",
    "mon",
    "app",
    "cache",
    "lb",
    "mq",
    "dns",
    "ntp",
    "api",
    "log",
    "bkp",
    "k8s",
    "mail",
    "vpn",
]


def det_uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def det_mac(rng):
    return "fa:16:3e:%02x:%02x:%02x" % (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def rule(rng, direction, ethertype, protocol=None, pmin=None, pmax=None, prefix=None, remote=None):
    return {
        "id": det_uuid(rng),
        "direction": direction,
        "ethertype": ethertype,
        "protocol": protocol,
        "port_range_min": pmin,
        "port_range_max": pmax,
        "remote_ip_prefix": prefix,
        "remote_group_id": remote,
    }


def gen_rules(rng, gi, sg_ids, nrules, v6):
    """Rules for group gi: default-SG-like egress, then a deterministic mix
    of prefix rules, port ranges (multiport), ICMP and remote_group_id."""
    me = sg_ids[gi]
    other = sg_ids[(gi + 1) % len(sg_ids)]
    v4_prefixes = [
        "198.51.100.0/24",
        "198.51.100.64/26",
        "203.0.113.0/25",
        "203.0.113.128/25",
        "192.0.2.0/24",
    ]
    v6_prefixes = ["2001:db8:100::/48", "2001:db8:200::/48", "2001:db8::/32"]
    out = [rule(rng, "egress", "IPv4")]
    if v6:
        out.append(rule(rng, "egress", "IPv6"))
    kinds = [
        "tcp_single",
        "tcp_range",
        "udp_single",
        "icmp",
        "remote_self",
        "remote_other",
        "v6_tcp",
        "v6_icmp",
        "egress_tcp",
        "remote_range",
    ]
    seen = set()
    k = 0
    while len(out) < nrules:
        kind = kinds[(gi + k) % len(kinds)]
        k += 1
        port = 1000 + rng.randrange(60000)
        if kind == "tcp_single":
            r = rule(
                rng,
                "ingress",
                "IPv4",
                "tcp",
                22 if k < 3 else port,
                22 if k < 3 else port,
                rng.choice(v4_prefixes),
            )
        elif kind == "tcp_range":
            r = rule(rng, "ingress", "IPv4", "tcp", port, port + 10 + rng.randrange(90))
        elif kind == "udp_single":
            r = rule(rng, "ingress", "IPv4", "udp", port, port, rng.choice(v4_prefixes))
        elif kind == "icmp":
            r = rule(rng, "ingress", "IPv4", "icmp", 8, 0)
        elif kind == "remote_self":
            r = rule(rng, "ingress", "IPv4", "tcp", port, port, remote=me)
        elif kind == "remote_other":
            r = rule(rng, "ingress", "IPv4", None, remote=other)
        elif kind == "remote_range":
            r = rule(rng, "ingress", "IPv4", "udp", port, port + 100, remote=me)
        elif kind == "v6_tcp":
            if not v6:
                continue
            r = rule(
                rng,
                "ingress",
                "IPv6",
                "tcp",
                443 if k < 10 else port,
                443 if k < 10 else port,
                rng.choice(v6_prefixes),
            )
        elif kind == "v6_icmp":
            if not v6:
                continue
            r = rule(rng, "ingress", "IPv6", "ipv6-icmp", remote=me)
        else:  # egress_tcp
            r = rule(rng, "egress", "IPv4", "tcp", port, port, rng.choice(v4_prefixes))
        key = tuple((a, b) for a, b in r.items() if a != "id")
        if key in seen:
            continue
        seen.add(key)
        out.append(r)
    return out[:nrules]


def v4_fixed(i, n_ports):
    if n_ports <= 240:
        return str(ipaddress.IPv4Address("192.0.2.10") + i)
    return str(ipaddress.IPv4Address("100.64.0.16") + i)


def v4_pair(i, n_ports):
    if n_ports <= 240:
        return str(ipaddress.IPv4Address("203.0.113.10") + i)
    # upper half of 100.64.0.0/10, disjoint from fixed IPs
    return str(ipaddress.IPv4Address("100.96.0.16") + i)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", "-n", type=int, required=True)
    ap.add_argument("--groups", "-g", type=int, default=10)
    ap.add_argument("--rules", "-r", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--psec-off",
        type=int,
        default=0,
        help="number of ports (the last K) with port security off",
    )
    ap.add_argument(
        "--pair-every", type=int, default=3, help="every k-th port gets an allowed address pair"
    )
    ap.add_argument("--no-ipset", action="store_true")
    ap.add_argument("--no-v6", action="store_true")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    v6 = not a.no_v6
    sg_ids = [det_uuid(rng) for _ in range(a.groups)]
    sgs = []
    for gi, sg_id in enumerate(sg_ids):
        name = NAMES[gi % len(NAMES)] + ("" if gi < len(NAMES) else str(gi))
        sgs.append({"id": sg_id, "name": name, "rules": gen_rules(rng, gi, sg_ids, a.rules, v6)})
    ports = []
    for i in range(a.ports):
        pid = det_uuid(rng)
        mac = det_mac(rng)
        fixed = [v4_fixed(i, a.ports)]
        if v6:
            fixed.append(str(ipaddress.IPv6Address("2001:db8:1::10") + i))
        psec = i < a.ports - a.psec_off
        if psec:
            ngroups = 1 + (i % 2)
            groups = [sg_ids[(i + j) % a.groups] for j in range(ngroups)]
        else:
            groups = []
        pairs = []
        if psec and a.pair_every and i % a.pair_every == 0:
            pairs.append({"ip_address": v4_pair(i, a.ports), "mac_address": det_mac(rng)})
            if v6:
                pairs.append(
                    {
                        "ip_address": str(ipaddress.IPv6Address("2001:db8:2::10") + i),
                        "mac_address": mac,
                    }
                )
        ports.append(
            {
                "id": pid,
                "device": "tap" + pid[:11],
                "mac_address": mac,
                "fixed_ips": fixed,
                "security_groups": groups,
                "port_security_enabled": psec,
                "allowed_address_pairs": pairs,
            }
        )
    doc = {"security_groups": sgs, "ports": ports, "enable_ipset": not a.no_ipset}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
