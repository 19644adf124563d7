import pytest

from sgweb import dispatch
from tests.personas import *  # noqa: F403


@pytest.fixture(autouse=True)
def dispatched(monkeypatch) -> dict[str, list]:
    """Record what the actions hand to the dispatcher instead of sending it anywhere."""
    sent: dict[str, list] = {"hosts": [], "events": []}
    monkeypatch.setattr(
        dispatch, "host_sender", lambda names, reason: sent["hosts"].append((names, reason))
    )
    monkeypatch.setattr(
        dispatch,
        "event_sender",
        lambda kind, payload, scope: sent["events"].append((kind, payload, scope)),
    )
    return sent
