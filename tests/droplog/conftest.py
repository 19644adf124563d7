"""The drop log's world: project alpha's ports web1 and db1 on compute1 in group "web" (ssh from
198.51.100.0/24, ping from anywhere), a port of project bravo's on the same host, the personas."""

from __future__ import annotations

import pytest

from tests.controlplane import factories
from tests.droplog.batches import FlowAgent
from tests.livefixtures import World, live_redis, no_dispatch, world  # noqa: F401
from tests.personas import *  # noqa: F403


@pytest.fixture
def agent() -> FlowAgent:
    return FlowAgent()


@pytest.fixture
def bravo_port(charlie, adam, project_b):
    network, _subnet = factories.network_with_subnet(charlie, project_b, cidr="203.0.113.0/24")
    group = factories.group(charlie, project_b, "bravo-web")
    return factories.port(
        adam, project_b, network, name="bravo1", security_groups=[str(group.id)], host="compute1"
    )
