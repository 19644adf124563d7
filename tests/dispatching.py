"""What the actions hand to the dispatcher, recorded instead of sent (hosts and live events)."""

from __future__ import annotations

from typing import Any

import pytest

from sgweb import dispatch
from sgweb.hostsync.publish import PublishingHostSync


class RecordingHostSync(PublishingHostSync):
    """Works out the affected hosts like the real hook, and records instead of publishing."""

    def __init__(self, sent: list[tuple[list[str], str]]) -> None:
        self.sent = sent

    def publish(self, receipts: dict[str, list[int]], reason: str) -> None:
        self.sent.append((sorted(receipts), reason))


def record_dispatch(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    sent: dict[str, list[Any]] = {"hosts": [], "events": [], "network_nodes": []}
    monkeypatch.setattr(dispatch, "_host_sync", RecordingHostSync(sent["hosts"]))
    monkeypatch.setattr(
        dispatch,
        "_event_sender",
        lambda kind, payload, scope: sent["events"].append((kind, payload, scope)),
    )
    monkeypatch.setattr(
        dispatch,
        "_network_node_sender",
        lambda hosts, reason: sent["network_nodes"].append((sorted(hosts), reason)),
    )
    return sent
