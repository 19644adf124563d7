"""Which router joins two subnets: read-only questions other apps ask about routing."""

from __future__ import annotations

from typing import Any

from sgweb.routers.models import Router


def router_between(subnet_a: Any, subnet_b: Any) -> Router | None:
    """The router with an interface on both subnets (the first by id, as Neutron allows only one
    router per subnet gateway in practice), or None: nothing routes between them."""
    return (
        Router.objects.filter(interfaces__subnet_id=subnet_a)
        .filter(interfaces__subnet_id=subnet_b)
        .select_related("host")
        .order_by("id")
        .first()
    )
