import pytest

from tests.dispatching import record_dispatch
from tests.personas import *  # noqa: F403


@pytest.fixture(autouse=True)
def dispatched(monkeypatch) -> dict[str, list]:
    """Record what the actions hand to the dispatcher instead of sending it anywhere."""
    return record_dispatch(monkeypatch)
