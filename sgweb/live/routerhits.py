"""A router's firewall rule counters as the pages show them (issue 16): the `router-hits`
message of `/ws/routers/<id>`, and the same body for the page's polling fallback
(`GET /routers/<id>/hits`).

The network node's agent reads its routers' counters only while a browser watches them
(`P:host:NAME:routers:watched`, renewed by whoever shows them) and keeps the latest reading in
`P:host:NAME:routers:hits` (`sgweb.wire.routers.hits_document`): one document per node, cut here
to one router's rules.
"""

from __future__ import annotations

from typing import Any


def router_rules(document: dict[str, Any] | None, router_id: str) -> dict[str, dict[str, int]]:
    """rule id -> {"packets", "bytes"} of one router, from a node's hits document."""
    routers = (document or {}).get("routers") or {}
    return {
        rule_id: {"packets": int(counts[0]), "bytes": int(counts[1])}
        for rule_id, counts in (routers.get(router_id) or {}).items()
    }


def router_hits_message(
    router_id: str, document: dict[str, Any] | None, error: str = ""
) -> dict[str, Any]:
    return {
        "type": "router-hits",
        "router_id": router_id,
        "at": (document or {}).get("at"),
        "rules": router_rules(document, router_id),
        "error": error,
    }
