"""SGWEB_ACCOUNTING_RETENTION: STEP:KEEP pairs, refused loudly when they make no sense."""

from __future__ import annotations

import pytest

from sgweb.settings import ConfigurationError, parse_retention


def test_the_default_retention_reads_as_steps_and_how_long_each_is_kept() -> None:
    assert parse_retention("10s:1d,1m:7d,1h:90d") == ((10, 86400), (60, 604800), (3600, 7776000))
    assert parse_retention("1h:90d, 10s:6h") == ((10, 21600), (3600, 7776000))


@pytest.mark.parametrize(
    "text",
    ["", "10s", "10s:", "ten:1d", "0s:1d", "10s:5s", "10s:1d,15s:1w", "10x:1d", "-10s:1d"],
)
def test_a_retention_that_makes_no_sense_stops_the_start(text: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_retention(text)
