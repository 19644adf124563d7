"""/ws/drops over the real Redis channel layer: a flow reaches its project's members live and
never an outsider's socket."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from sgweb.asgi import websocket_urlpatterns
from sgweb.droplog import actions
from sgweb.live import events
from tests.droplog.batches import blocked_ping, blocked_ssh
from tests.live.test_consumers import members_of

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


async def connect(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/drops")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


def test_a_drop_reaches_its_projects_members_and_readers_live_but_no_outsider(
    world, agent, bravo_port, alice, charlie, rita, live_redis
):
    alpha = world.web.project_id.hex

    async def scenario():
        member, outsider, reader = await connect(alice), await connect(charlie), await connect(rita)
        await members_of(live_redis, events.drops_group(alpha), 1)
        await members_of(live_redis, events.drops_group(bravo_port.project_id.hex), 1)
        await members_of(live_redis, events.GROUP_ALL_DROPS, 1)
        await sync_to_async(actions.record)(agent.batch(blocked_ssh(world.web)))
        message = await member.receive_json_from(timeout=10)
        assert message["type"] == "drop-flows" and message["project_id"] == alpha
        (flow,) = message["flows"]
        assert flow["port_id"] == str(world.web.pk) and flow["count"] == 3
        assert flow["explanation"].startswith("dropped at port web1 ingress")
        assert (await reader.receive_json_from(timeout=10))["flows"][0]["id"] == flow["id"]
        assert await outsider.receive_nothing(timeout=1.0)
        # The outsider's own project's drops do reach them.
        await sync_to_async(actions.record)(agent.batch(blocked_ping(bravo_port)))
        theirs = await outsider.receive_json_from(timeout=10)
        assert [f["port_id"] for f in theirs["flows"]] == [str(bravo_port.pk)]
        assert await member.receive_nothing(timeout=1.0)
        for socket in (member, outsider, reader):
            await socket.disconnect()

    async_to_sync(scenario)()
