"""Lab hosts: `manage.py lab up|down|status|ping|connect`, and `bring_up` for `manage.py up`."""

from __future__ import annotations

from typing import Any


def bring_up(hosts: int = 2, vms: int = 2, **options: Any) -> Any:
    """Build a lab of `hosts` compute hosts with `vms` VMs each (see sgweb.lab.core.bring_up)."""
    from sgweb.lab.core import bring_up as build

    return build(hosts, vms, **options)


def tear_down(**options: Any) -> Any:
    from sgweb.lab.core import tear_down as remove

    return remove(**options)
