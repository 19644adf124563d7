"""A small world for live tests: project alpha with a network, group "web" and two ports on
host compute1 (through the actions, as users would), plus the personas."""

from __future__ import annotations

from tests.livefixtures import World, no_dispatch, world  # noqa: F401
from tests.personas import *  # noqa: F403
