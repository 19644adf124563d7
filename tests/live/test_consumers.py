"""The live websocket consumers against the real Redis channel layer and Redis pub/sub."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.db import transaction

from sgweb.asgi import websocket_urlpatterns
from sgweb.live import events
from sgweb.live.chains import port_chain_keys
from sgweb.wire import live as wire

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]
PREFIX = "neutron-openvswi"


def run(scenario):
    return async_to_sync(scenario)()


async def connect(path: str, user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


async def refused_with(path: str, user) -> int:
    communicator = await connect(path, user)
    output = await communicator.receive_output(timeout=5)
    assert output["type"] == "websocket.close"
    await communicator.wait()
    return output["code"]


async def receive_type(communicator: WebsocketCommunicator, kind: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        message = await communicator.receive_json_from(
            timeout=max(0.1, deadline - time.monotonic())
        )
        if message["type"] == kind:
            return message


async def types_seen(communicator: WebsocketCommunicator, seconds: float) -> set[str]:
    """The types of the messages a socket sends in the next `seconds`."""
    seen = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not await communicator.receive_nothing(timeout=0.2):
            seen.add((await communicator.receive_json_from())["type"])
    return seen


async def members_of(live_redis, group: str, count: int, timeout: float = 20.0) -> None:
    """Wait until `count` sockets joined `group` (channels_redis keeps members in a zset)."""
    client, prefix = live_redis
    deadline = time.monotonic() + timeout
    while await sync_to_async(client.zcard)(f"{prefix}:group:{group}") < count:
        assert time.monotonic() < deadline, f"{count} sockets never joined {group}"
        await asyncio.sleep(0.05)


def paths(world, trace_id: str = "00000000-0000-0000-0000-000000000000") -> list[str]:
    return [
        f"/ws/ports/{world.web.pk}",
        f"/ws/security-groups/{world.group.pk}",
        f"/ws/hosts/{world.host}",
        f"/ws/traces/{trace_id}",
    ]


def a_trace(world, alice, monkeypatch):
    from sgweb.traces import actions, proof

    monkeypatch.setattr(proof, "agent_alive", lambda host: False)
    return actions.start_trace(alice, source="web1", destination="db1", protocol="icmp")


def test_anonymous_users_are_closed_with_4401(world, live_redis, alice, monkeypatch):
    from django.contrib.auth.models import AnonymousUser

    trace = a_trace(world, alice, monkeypatch)

    async def scenario():
        for path in [*paths(world, str(trace.pk)), "/ws/events"]:
            assert await refused_with(path, AnonymousUser()) == 4401, path

    run(scenario)


def test_outsiders_are_closed_with_4404_for_ports_groups_hosts_and_traces(
    world, live_redis, alice, charlie, monkeypatch
):
    trace = a_trace(world, alice, monkeypatch)

    async def scenario():
        for path in paths(world, str(trace.pk)):
            assert await refused_with(path, charlie) == 4404, path
        assert await refused_with("/ws/ports/not-a-uuid", alice) == 4404
        assert await refused_with("/ws/hosts/nowhere", alice) == 4404

    run(scenario)


def test_a_reader_and_a_member_may_watch_a_port_and_its_watch_is_released(
    world, live_redis, alice, rita
):
    client, prefix = live_redis
    keys = set(port_chain_keys(PREFIX, str(world.web.pk)))

    def scenario(user):
        async def watch():
            await watch_as(user)

        return watch

    async def watch_as(user):
        communicator = await connect(f"/ws/ports/{world.web.pk}", user)
        chains = await communicator.receive_json_from(timeout=5)
        assert chains["type"] == "chains" and chains["port_id"] == str(world.web.pk)
        assert chains["host"] == "compute1" and len(chains["chains"]) == 6
        watched = await sync_to_async(wire.watched_chains)(client, prefix, "compute1")
        assert watched == keys
        await communicator.disconnect()
        assert await sync_to_async(wire.watched_chains)(client, prefix, "compute1") == set()

    for user in (rita, alice):
        run(scenario(user))


def test_a_port_watcher_gets_its_chains_counters_from_the_agents_messages(world, live_redis, alice):
    client, prefix = live_redis
    ingress = f"{PREFIX}-i{str(world.web.pk)[:10]}"
    other = f"{PREFIX}-i{str(world.db.pk)[:10]}"

    async def scenario():
        communicator = await connect(f"/ws/ports/{world.web.pk}", alice)
        await receive_type(communicator, "chains")
        await asyncio.sleep(0.3)  # the subscription is made by the pump task
        message = {
            "type": "host-counters", "host": "compute1", "at": 1764190000.5,
            "chains": [
                {"key": f"4:filter:{ingress}", "name": ingress, "family": 4, "table": "filter",
                 "rules": [{"position": 1, "packets": 10, "bytes": 840, "pps": 1.0,
                            "bps": 84.0, "rule_id": None}]},
                {"key": f"4:filter:{other}", "name": other, "family": 4, "table": "filter",
                 "rules": [{"position": 1, "packets": 5, "bytes": 5, "pps": 0, "bps": 0}]},
            ],
        }  # fmt: skip
        await sync_to_async(client.publish)(
            wire.counters_channel(prefix, "compute1"), json.dumps(message)
        )
        counters = await receive_type(communicator, "counters")
        assert counters == {
            "type": "counters", "port_id": str(world.web.pk), "host": "compute1",
            "at": 1764190000.5,
            "chains": [{"name": ingress, "family": 4, "rules": [
                {"position": 1, "packets": 10, "bytes": 840, "pps": 1.0, "bps": 84.0}]}],
        }  # fmt: skip
        await communicator.disconnect()

    run(scenario)


def test_a_group_watcher_gets_hits_per_rule_summed_over_its_ports(world, live_redis, alice):
    client, prefix = live_redis
    client.hset(wire.last_hit_key(prefix), world.ssh_rule_id, "1764190000.25")

    def chain(port, packets):
        name = f"{PREFIX}-i{str(port.pk)[:10]}"
        return {"key": f"4:filter:{name}", "name": name, "family": 4, "table": "filter",
                "rules": [{"position": 4, "packets": packets, "bytes": packets * 60, "pps": 1.0,
                           "bps": 60.0, "rule_id": world.ssh_rule_id}]}  # fmt: skip

    async def scenario():
        communicator = await connect(f"/ws/security-groups/{world.group.pk}", alice)
        first = await receive_type(communicator, "rule-hits")
        assert first["group_id"] == str(world.group.pk)
        assert {r["rule_id"] for r in first["rules"]} >= {world.ssh_rule_id, world.ping_rule_id}
        await asyncio.sleep(0.3)
        message = {"type": "host-counters", "host": "compute1", "at": time.time(),
                   "chains": [chain(world.web, 3), chain(world.db, 4)]}  # fmt: skip
        await sync_to_async(client.publish)(
            wire.counters_channel(prefix, "compute1"), json.dumps(message)
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            hits = await receive_type(communicator, "rule-hits")
            ssh = next(r for r in hits["rules"] if r["rule_id"] == world.ssh_rule_id)
            if ssh["packets"]:
                break
        assert ssh == {"rule_id": world.ssh_rule_id, "packets": 7, "bytes": 420, "pps": 2.0,
                       "last_hit_at": 1764190000.25, "ports": 2}  # fmt: skip
        watched = await sync_to_async(wire.watched_chains)(client, prefix, "compute1")
        assert f"4:filter:{PREFIX}-o{str(world.db.pk)[:10]}" in watched
        await communicator.disconnect()

    run(scenario)


def test_apply_and_drift_events_reach_host_port_and_events_watchers(
    world, live_redis, alice, charlie
):
    payload = {"host": "compute1", "status": "in-sync", "desired_revision": 7,
               "applied_revision": 7, "last_apply_at": "2026-11-26T22:00:00+00:00",
               "last_apply_duration_ms": 12, "last_error": "",
               "report": {"revision": 7, "ok": True, "duration_ms": 12.5,
                          "finished_at": 1764190000.0}}  # fmt: skip

    async def scenario():
        host = await connect("/ws/hosts/compute1", alice)
        status = await receive_type(host, "host-status")
        assert status["host"] == "compute1" and status["alive"] is False
        port = await connect(f"/ws/ports/{world.web.pk}", alice)
        await receive_type(port, "chains")
        everything = await connect("/ws/events", alice)
        outsider = await connect("/ws/events", charlie)
        # The sockets are accepted before they are authorised and join their groups.
        await members_of(live_redis, events.GROUP_GLOBAL, 2)
        await sync_to_async(events.channels_sender)("host.apply", payload, "global")
        for communicator in (host, port, everything):
            apply = await receive_type(communicator, "apply")
            assert apply == {"type": "apply", "host": "compute1", "revision": 7, "ok": True,
                             "duration_ms": 12.5, "error": "", "at": 1764190000.0}  # fmt: skip
            status = await receive_type(communicator, "host-status")
            assert status["status"] == "in-sync" and status["applied_revision"] == 7
        drift = {**payload, "report": {"found": {"rules": ["x"]}, "repaired": True,
                                       "detected_at": 1764190001.0}}  # fmt: skip
        await sync_to_async(events.channels_sender)("host.drift", drift, "global")
        message = await receive_type(host, "drift")
        assert message == {"type": "drift", "host": "compute1", "detail": "rules: 1",
                           "words": [], "alerts": [], "repairs": [],
                           "repaired": True, "at": 1764190001.0}  # fmt: skip
        assert await outsider.receive_nothing(timeout=0.5)
        for communicator in (host, port, everything, outsider):
            await communicator.disconnect()

    run(scenario)


def test_router_applies_reach_the_members_of_the_routers_project_and_a_following_page(
    world, live_redis, alice, adam, charlie, project_a
):
    from sgweb.fwaas.models import NodeRouterApply
    from tests.controlplane.fwaas_factories import routed_pair

    routed_pair(adam, alice, project_a)
    NodeRouterApply.objects.create(host_name="network1", revision=3, ok=True)
    report = {"host": "network1", "revision": 4, "ok": True, "duration_ms": 2.5,
              "kernel_applied_at": 1764190000.0}  # fmt: skip

    async def scenario():
        # A page following a firewall change asks for the nodes' last applies as it opens.
        following = await connect("/ws/events?statuses=now&routers=now", alice)
        first = await receive_type(following, "router-apply")
        assert first["host"] == "network1" and first["revision"] == 3 and first["ok"] is True
        outsider = await connect("/ws/events", charlie)
        await members_of(live_redis, events.GROUP_GLOBAL, 2)
        await sync_to_async(events.channels_sender)("router.apply", report, "global")
        message = await receive_type(following, "router-apply")
        assert message == {"type": "router-apply", "host": "network1", "revision": 4,
                           "ok": True, "duration_ms": 2.5, "error": "",
                           "at": 1764190000.0}  # fmt: skip
        assert await outsider.receive_nothing(timeout=0.5)
        for communicator in (following, outsider):
            await communicator.disconnect()

    run(scenario)


def test_a_router_watcher_gets_its_rules_counters_as_the_node_reads_them(
    world, live_redis, alice, adam, charlie, project_a
):
    from sgweb.fwaas import actions as fwaas_actions
    from sgweb.wire import routers as router_wire
    from tests.controlplane.fwaas_factories import routed_pair

    pair = routed_pair(adam, alice, project_a)
    rule = fwaas_actions.create_rule(alice, project_a, name="deny-db", protocol="tcp",
                                     destination_port="5432", action="deny")  # fmt: skip
    client, prefix = live_redis
    keys = router_wire.router_keys("network1", prefix)
    router_id, rule_id = str(pair.router.pk), str(rule.pk)

    def agent_reads(at: float, packets: int) -> None:
        document = router_wire.hits_document(at, {router_id: {rule_id: (packets, packets * 84)}})
        client.set(keys.hits, json.dumps(document))

    async def scenario():
        assert await refused_with(f"/ws/routers/{router_id}", charlie) == 4404
        assert await refused_with("/ws/routers/not-a-uuid", alice) == 4404
        watcher = await connect(f"/ws/routers/{router_id}", alice)
        first = await receive_type(watcher, "router-hits")
        # Nothing read yet: said as such; the socket asked the node's agent to read.
        assert first == {"type": "router-hits", "router_id": router_id, "at": None,
                         "rules": {}, "error": ""}  # fmt: skip
        assert await sync_to_async(client.exists)(keys.watched)
        await sync_to_async(agent_reads)(1764190000.0, 3)
        message = await receive_type(watcher, "router-hits")
        assert message["at"] == 1764190000.0
        assert message["rules"] == {rule_id: {"packets": 3, "bytes": 252}}
        # The same reading is not sent again; the next one is.
        assert await watcher.receive_nothing(timeout=0.6)
        await sync_to_async(agent_reads)(1764190001.0, 5)
        message = await receive_type(watcher, "router-hits")
        assert message["at"] == 1764190001.0 and message["rules"][rule_id]["packets"] == 5
        await watcher.disconnect()

    run(scenario)


def test_a_trace_watcher_gets_the_stored_messages_then_live_ones(
    world, live_redis, alice, bob, monkeypatch
):
    from sgweb.traces import actions

    trace = a_trace(world, alice, monkeypatch)

    async def scenario():
        communicator = await connect(f"/ws/traces/{trace.pk}", bob)
        static = await communicator.receive_json_from(timeout=5)
        assert static["type"] == "trace-static" and static["verdict"] == "ACCEPT"
        result = await communicator.receive_json_from(timeout=5)
        assert result["type"] == "trace-result" and result["status"] == "failed"
        packet = {"type": "trace-packet", "index": 0, "direction": "request",
                  "host": "compute1", "steps": [], "verdict": "ACCEPT"}  # fmt: skip
        await sync_to_async(actions.record_event)(str(trace.pk), packet)
        live = await receive_type(communicator, "trace-packet")
        assert live["trace_id"] == str(trace.pk) and live["seq"] == 2
        await communicator.disconnect()

    run(scenario)


def test_a_watcher_idle_longer_than_the_layers_blocking_receive_stays_connected(
    world, live_redis, alice
):
    async def scenario():
        communicator = await connect("/ws/hosts/compute1", alice)
        await receive_type(communicator, "host-status")
        await asyncio.sleep(6.5)  # channels_redis blocks 5 s per receive
        await sync_to_async(events.channels_sender)(
            "host.apply", {"host": "compute1", "status": "in-sync"}, "host:compute1"
        )
        status = await receive_type(communicator, "host-status")
        assert status["status"] == "in-sync"
        await communicator.disconnect()

    run(scenario)


def test_an_agent_coming_alive_is_sent_as_a_host_status_change(world, live_redis, alice):
    client, prefix = live_redis

    async def scenario():
        communicator = await connect("/ws/hosts/compute1", alice)
        first = await receive_type(communicator, "host-status")
        # No agent ever reported for it: "no agent" (unknown), not "down".
        assert first["alive"] is False and first["status"] == "unknown"
        beat = json.dumps({"at": time.time(), "status": "in-sync"})
        await sync_to_async(client.set)(f"{prefix}:host:compute1:heartbeat", beat, ex=30)
        changed = await receive_type(communicator, "host-status", timeout=8)
        assert changed["alive"] is True and changed["status"] != "down"
        await communicator.disconnect()

    run(scenario)


def test_a_rule_added_elsewhere_reaches_the_groups_page_and_the_project_watchers_only(
    world, live_redis, alice, bob, charlie, rita
):
    from sgweb.security import actions as security_actions

    async def scenario():
        group_page = await connect(f"/ws/security-groups/{world.group.pk}", alice)
        await receive_type(group_page, "rule-hits")
        member, reader, outsider = [
            await connect("/ws/events", user) for user in (bob, rita, charlie)
        ]
        await members_of(live_redis, events.GROUP_GLOBAL, 3)
        rule = await sync_to_async(security_actions.create_security_group_rule)(
            bob, world.group, direction="ingress", protocol="tcp", port_range_min=443,
            port_range_max=443,
        )  # fmt: skip
        for communicator in (group_page, member, reader):
            change = await receive_type(communicator, "change")
            assert change["object_type"] == "security_group_rule"
            assert change["object_id"] == str(rule.id) and change["action"] == "create"
            assert change["security_group_id"] == str(world.group.pk)
            assert change["actor"] == "bob"
        assert await outsider.receive_nothing(timeout=0.5)
        for communicator in (group_page, member, reader, outsider):
            await communicator.disconnect()

    run(scenario)


def test_a_bulk_create_reaches_each_page_as_one_message_with_what_it_shows(
    world, live_redis, alice, bob
):
    from sgweb import dispatch
    from sgweb.security import actions as security_actions
    from tests.controlplane.factories import group

    other = group(alice, world.group.project, "other")

    def bulk_create() -> list[str]:
        with transaction.atomic(), dispatch.publish_once(), dispatch.coalesce_changes():
            rules = [
                security_actions.create_security_group_rule(
                    bob,
                    owner,
                    direction="ingress",
                    protocol="tcp",
                    port_range_min=port,
                    port_range_max=port,
                )
                for owner, port in zip(
                    (world.group, world.group, other, other, world.group, world.group),
                    range(8001, 8007),
                    strict=True,
                )
            ]
        return [str(rule.id) for rule in rules]

    async def scenario():
        group_page = await connect(f"/ws/security-groups/{world.group.pk}", alice)
        await receive_type(group_page, "rule-hits")
        overview = await connect("/ws/events", bob)
        await members_of(live_redis, events.GROUP_GLOBAL, 1)
        created = await sync_to_async(bulk_create)()
        everything = await receive_type(overview, "changes")
        assert [change["object_id"] for change in everything["changes"]] == created
        mine = await receive_type(group_page, "changes")
        assert [change["object_id"] for change in mine["changes"]] == created[:2] + created[4:]
        for communicator in (group_page, overview):
            assert not {"change", "changes"} & await types_seen(communicator, 1.0)
            await communicator.disconnect()

    run(scenario)


def test_the_group_page_ignores_changes_of_other_groups(world, live_redis, alice):
    from tests.controlplane.factories import group

    async def scenario():
        group_page = await connect(f"/ws/security-groups/{world.group.pk}", alice)
        await receive_type(group_page, "rule-hits")
        await sync_to_async(group)(alice, world.group.project, "other")
        seen = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            if not await group_page.receive_nothing(timeout=0.2):
                seen.append((await group_page.receive_json_from())["type"])
        assert "rule-hits" in seen and "change" not in seen
        await group_page.disconnect()

    run(scenario)


def test_every_declared_event_kind_becomes_protocol_messages():
    from sgweb.dispatch import EventKind

    samples = {
        EventKind.CHANGE: {"type": "change", "object_type": "port"},
        EventKind.CHANGES: {"type": "changes", "changes": [{"type": "change"}]},
        EventKind.HOST_APPLY: {"host": "compute1", "report": {"ok": True}},
        EventKind.HOST_DRIFT: {"host": "compute1", "report": {"repaired": True}},
        EventKind.TRACE_PACKET: {"type": "trace-packet"},
        EventKind.TRACE_RESULT: {"type": "trace-result"},
        EventKind.DROP_FLOWS: {"type": "drop-flows", "flows": []},
        EventKind.ROUTER_APPLY: {"host": "network1", "revision": 3, "ok": True},
    }
    # access.changed is for the sockets, not the browsers (tests/live/test_access_revoked.py).
    assert set(samples) | {EventKind.ACCESS_CHANGED} == set(EventKind)
    assert events.protocol_messages(EventKind.ACCESS_CHANGED, {"user_id": 1}) == []
    for kind, payload in samples.items():
        assert events.protocol_messages(kind, payload), kind
    with pytest.raises(ValueError):
        events.protocol_messages("port.updated", {})
