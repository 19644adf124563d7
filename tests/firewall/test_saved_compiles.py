"""The optimised compiler's output equals, byte for byte, what the compiler produced before it
was optimised (digests saved in saved_compiles.json; see saved_compiles.py to re-save them
when a change is meant to alter the rules)."""

from __future__ import annotations

import pytest

from tests.firewall.saved_compiles import SCENARIOS, digests, saved, scenario_name


@pytest.mark.parametrize("params", SCENARIOS, ids=lambda params: scenario_name(params))
def test_the_compiled_text_of_a_generated_scenario_matches_its_saved_digest(params) -> None:
    assert digests(params) == saved()[scenario_name(params)]
