"""`python manage.py lab up|down|status|ping|connect|wait`: lab hosts on this machine."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sgweb.hostsync.routers_publish import applied_report
from sgweb.hostsync.status import desired_revisions, host_liveness
from sgweb.lab import core


class Command(BaseCommand):
    help = "Lab compute hosts as network namespaces, with real agents (see sgweb.lab.core)."
    requires_system_checks: list[str] = []  # the lab must work while pages are being edited

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        up = sub.add_parser("up", help="build the lab and start its agents")
        up.add_argument("--hosts", type=int, default=2)
        up.add_argument("--vms", type=int, default=2, help="VMs per host")
        up.add_argument(
            "--net2-vms",
            type=int,
            default=1,
            help="VMs of the first host on the second network, lab-net2 (0: none)",
        )
        up.add_argument(
            "--no-router",
            action="store_true",
            help="no network node and router between lab-net and lab-net2 (VMs on one L2 segment)",
        )
        up.add_argument("--prefix", default=core.LAB_PREFIX, help="namespace name prefix")
        up.add_argument("--no-control-worker", action="store_true")
        up.add_argument("--json", action="store_true", help="print the lab as JSON")
        down = sub.add_parser("down", help="stop the agents, remove namespaces and lab ports")
        down.add_argument("--prefix", default=None)
        status = sub.add_parser("status", help="hosts, agents and VMs of the running lab")
        status.add_argument("--json", action="store_true")
        ping = sub.add_parser("ping", help="one ICMP echo from SRC to DST (VM or port names)")
        ping.add_argument("src")
        ping.add_argument("dst")
        ping.add_argument("-6", dest="family", action="store_const", const=6, default=4)
        ping.add_argument("--count", type=int, default=1)
        connect = sub.add_parser("connect", help="a TCP connect (or UDP exchange) SRC -> DST")
        connect.add_argument("src")
        connect.add_argument("dst")
        connect.add_argument("--port", type=int, required=True)
        connect.add_argument("--udp", action="store_true")
        connect.add_argument("-6", dest="family", action="store_const", const=6, default=4)
        wait = sub.add_parser("wait", help="wait until every lab host applied its newest state")
        wait.add_argument("--timeout", type=float, default=30.0)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            getattr(self, f"do_{action}")(options)
        except core.LabError as exc:
            raise CommandError(str(exc)) from exc

    def _state(self) -> core.LabState:
        state = core.LabState.load(core.lab_dir())
        if state is None:
            raise core.LabError("no lab is up (run: manage.py lab up)")
        return state

    def do_up(self, options: dict[str, Any]) -> None:
        started = time.perf_counter()
        state = core.bring_up(
            options["hosts"],
            options["vms"],
            prefix=options["prefix"],
            control_worker=not options["no_control_worker"],
            net2_vms=options["net2_vms"],
            router=not options["no_router"],
        )
        if options["json"]:
            self.stdout.write(json.dumps(_as_dict(state), indent=2))
            return
        self.stdout.write(f"lab up in {time.perf_counter() - started:.1f} s")
        self._print(state)
        if not state.vms:
            return
        routed = [vm for vm in state.vms if vm.network == core.NETWORK2_NAME]
        across = (
            f"  manage.py lab ping {state.vms[-1].name} {routed[0].name}"
            f"   # across the router {core.ROUTER_NAME} on {state.network_nodes[0]}\n"
            if routed and state.router_id
            else ""
        )
        self.stdout.write(
            f"VMs are in group {core.GROUP_NAME} ({state.group_id}): egress only. Try\n"
            f"  manage.py lab ping {state.vms[0].name} {state.vms[-1].name}\n{across}"
            "then add an ingress ICMP rule to the group and ping again; firewall groups on the"
            " router's interfaces filter what crosses it."
        )

    def do_down(self, options: dict[str, Any]) -> None:
        removed = core.tear_down(prefix=options["prefix"])
        self.stdout.write(f"lab down: removed {len(removed)} namespaces")

    def do_status(self, options: dict[str, Any]) -> None:
        state = self._state()
        if options["json"]:
            self.stdout.write(json.dumps(_as_dict(state), indent=2))
        else:
            self._print(state)

    def _print(self, state: core.LabState) -> None:
        live = host_liveness(state.hosts + state.network_nodes)
        wanted = desired_revisions(state.hosts + state.network_nodes)
        for host in state.network_nodes:
            report = applied_report(host) or {}
            self.stdout.write(
                f"{host}: network node, agent {'alive' if live[host].alive else 'DOWN'}, "
                f"router {core.ROUTER_NAME} ({state.router_id}) between {core.NETWORK_NAME} and "
                f"{core.NETWORK2_NAME}: routers applied r{report.get('revision')}"
                f"{'' if report.get('ok', True) else ' FAILED: ' + str(report.get('error'))}"
            )
        for host in state.hosts:
            beat = live[host]
            self.stdout.write(
                f"{host}: agent {'alive' if beat.alive else 'DOWN'}"
                f" ({beat.agent_status or '-'}), applied r{beat.applied_revision}"
                f" / desired r{wanted[host]}"
            )
            for vm in state.vms:
                if vm.host == host:
                    self.stdout.write(
                        f"  {vm.name:12} {vm.device}  {vm.mac}  {vm.network:9} "
                        f"{' '.join(vm.addresses)}"
                    )

    def do_ping(self, options: dict[str, Any]) -> None:
        state = self._state()
        failures = 0
        for _ in range(options["count"]):
            result = core.probe(state, options["src"], options["dst"], family=options["family"])
            failures += not result.get("ok")
            self.stdout.write(_verdict(options, "icmp", result))
        if failures:
            raise CommandError(f"{failures} of {options['count']} pings got no reply")

    def do_connect(self, options: dict[str, Any]) -> None:
        state = self._state()
        protocol_name = "udp" if options["udp"] else "tcp"
        listener = core.listen(state, options["dst"], protocol_name, options["port"])
        try:
            time.sleep(0.2)
            result = core.probe(
                state,
                options["src"],
                options["dst"],
                protocol_name=protocol_name,
                port=options["port"],
                family=options["family"],
            )
        finally:
            listener.stop()
        self.stdout.write(_verdict(options, f"{protocol_name}/{options['port']}", result))
        if not result.get("ok"):
            raise CommandError("no connection")

    def do_wait(self, options: dict[str, Any]) -> None:
        revisions = core.wait_in_sync(self._state(), options["timeout"])
        self.stdout.write(f"in sync: {revisions}")


def _verdict(options: dict[str, Any], what: str, result: dict[str, Any]) -> str:
    if result.get("ok"):
        rtt = result.get("rtt_s")
        timing = f" in {rtt * 1000:.1f} ms" if rtt is not None else ""
        return f"{options['src']} -> {options['dst']} {what}: ok{timing}"
    return (
        f"{options['src']} -> {options['dst']} {what}: blocked ({result.get('error', 'no reply')})"
    )


def _as_dict(state: core.LabState) -> dict[str, Any]:
    data = asdict(state)
    data.pop("env", None)
    return data
