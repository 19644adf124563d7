"""What the apps above routers add to a router interface's life (registered in their ready):
the routers app must not import them, yet an interface whose port a firewall group filters
may not be removed from under it."""

from __future__ import annotations

from collections.abc import Callable

from sgweb.networks.models import Port

# port -> why it may not be removed (a refusal message), or None.
InterfaceInUse = Callable[[Port], str | None]

interface_in_use: list[InterfaceInUse] = []
