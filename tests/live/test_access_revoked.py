"""Live sockets lose their access when the user's access changes (issue 10, item 6).

Real sockets through the whole ASGI application (origin check, session cookie, Channels'
auth), the real Redis channel layer, and the real actions and auth views changing access.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from sgweb.asgi import application
from sgweb.live import events
from sgweb.tenancy import actions as tenancy

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


# Every socket a scenario opened, so `run` can disconnect them the way a browser would: an
# application still running when the scenario's event loop closes is cancelled instead, and
# the loop's close then waits on it.
_OPENED: list[WebsocketCommunicator] = []


def run(scenario):
    async def scenario_then_disconnect():
        try:
            return await asyncio.wait_for(scenario(), timeout=120)
        finally:
            while _OPENED:
                communicator = _OPENED.pop()
                with contextlib.suppress(Exception):
                    await communicator.disconnect(timeout=5)

    return async_to_sync(scenario_then_disconnect)()


def logged_in(user) -> Client:
    """A browser session of `user`, as the login page would make it."""
    client = Client()
    client.force_login(user)
    return client


async def open_socket(path: str, browser: Client, origin: str = "http://localhost"):
    headers = [
        (b"origin", origin.encode()),
        (b"host", b"localhost"),
        (b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode()),
    ]
    communicator = WebsocketCommunicator(application, path, headers=headers)
    _OPENED.append(communicator)
    connected, _ = await communicator.connect(timeout=10)
    assert connected, path
    return communicator


async def closed_with(communicator: WebsocketCommunicator, timeout: float = 20.0) -> int:
    """Skip the socket's messages until it closes; the close code."""
    deadline = time.monotonic() + timeout
    while True:
        output = await communicator.receive_output(timeout=max(0.1, deadline - time.monotonic()))
        if output["type"] == "websocket.close":
            return output["code"]


async def still_open(communicator: WebsocketCommunicator, for_s: float = 1.0) -> bool:
    """Nothing but protocol messages for `for_s` seconds (no close)."""
    deadline = time.monotonic() + for_s
    while time.monotonic() < deadline:
        if await communicator.receive_nothing(timeout=0.2):
            continue
        if (await communicator.receive_output(timeout=1))["type"] == "websocket.close":
            return False
    return True


def test_a_member_removed_from_the_project_is_cut_off_and_a_teammate_is_not(
    world, live_redis, alice, bob, adam, project_a
):
    path = f"/ws/security-groups/{world.group.pk}"

    async def scenario():
        removed = await open_socket(path, await sync_to_async(logged_in)(alice))
        teammate = await open_socket(path, await sync_to_async(logged_in)(bob))
        await sync_to_async(tenancy.remove_member)(adam, project_a, alice)
        assert await closed_with(removed) == CLOSE_NOT_FOUND
        assert await still_open(teammate)
        await teammate.disconnect()

    run(scenario)


def test_a_deactivated_users_sockets_close_as_unauthenticated(world, live_redis, alice):
    async def scenario():
        port = await open_socket(f"/ws/ports/{world.web.pk}", await sync_to_async(logged_in)(alice))
        events_socket = await open_socket("/ws/events", await sync_to_async(logged_in)(alice))

        def deactivate():
            alice.is_active = False
            alice.save(update_fields=["is_active"])

        await sync_to_async(deactivate)()
        assert await closed_with(port) == CLOSE_UNAUTHENTICATED
        assert await closed_with(events_socket) == CLOSE_UNAUTHENTICATED

    run(scenario)


def test_logging_out_closes_that_sessions_sockets_only(world, live_redis, alice):
    path = f"/ws/hosts/{world.host}"

    async def scenario():
        leaving = await sync_to_async(logged_in)(alice)
        staying = await sync_to_async(logged_in)(alice)
        left = await open_socket(path, leaving)
        kept = await open_socket(path, staying)
        response = await sync_to_async(leaving.post)("/accounts/logout")
        assert response.status_code in (200, 302)
        assert await closed_with(left) == CLOSE_UNAUTHENTICATED
        assert await still_open(kept)
        await kept.disconnect()

    run(scenario)


def test_a_reader_made_a_member_of_nothing_loses_the_group_it_watched(
    world, live_redis, rita, adam
):
    async def scenario():
        socket = await open_socket(
            f"/ws/security-groups/{world.group.pk}", await sync_to_async(logged_in)(rita)
        )
        await sync_to_async(tenancy.set_role)(adam, rita, "member")
        assert await closed_with(socket) == CLOSE_NOT_FOUND

    run(scenario)


def test_the_overview_socket_stops_relaying_a_project_its_user_left(
    world, live_redis, alice, adam, project_a
):
    client, prefix = live_redis
    # channels_redis keeps a group's members in a sorted set under this key.
    group_key = f"{prefix}:group:{events.project_group(project_a.id.hex)}"

    async def scenario():
        async def subscribed() -> bool:
            return bool(await sync_to_async(client.zcard)(group_key))

        async def wait_until(what: str, wanted: bool) -> None:
            deadline = time.monotonic() + 20
            while await subscribed() != wanted:
                assert time.monotonic() < deadline, what
                await overview.receive_nothing(timeout=0.2)

        overview = await open_socket("/ws/events", await sync_to_async(logged_in)(alice))
        await wait_until("the overview joins the project's changes", True)
        await sync_to_async(tenancy.remove_member)(adam, project_a, alice)
        await wait_until("the overview leaves the project it left", False)
        # Still open: the overview shows what the user may see, which is less now.
        assert await still_open(overview, for_s=0.5)
        await overview.disconnect()

    run(scenario)


def test_a_session_ended_without_any_event_is_caught_by_the_periodic_recheck(
    world, live_redis, alice, settings
):
    from django.contrib.sessions.models import Session

    settings.SGWEB_LIVE_ACCESS_RECHECK_S = 0.5

    async def scenario():
        socket = await open_socket(f"/ws/hosts/{world.host}", await sync_to_async(logged_in)(alice))
        # As an expired session is swept: straight from the table, no signal.
        await sync_to_async(lambda: Session.objects.all().delete())()
        assert await closed_with(socket) == CLOSE_UNAUTHENTICATED

    run(scenario)


def test_a_socket_from_a_foreign_origin_is_refused(world, live_redis, alice):
    async def scenario():
        browser = await sync_to_async(logged_in)(alice)
        communicator = WebsocketCommunicator(
            application,
            "/ws/events",
            headers=[
                (b"origin", b"https://evil.example"),
                (b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode()),
            ],
        )
        connected, _ = await communicator.connect(timeout=10)
        assert not connected

    run(scenario)
