"""Generated bench scenarios: `bench/gen_scenario.py` run in-process, cached in `var/bench`.

The generator and its format (`bench/README.md`) are part of the repository, so a clone needs
nothing beside it. It runs in this process (`runpy`, with `sys.argv` set for it), so no bench
starts a process of its own.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "var" / "bench"
GENERATOR = Path(__file__).resolve().with_name("gen_scenario.py")


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    saved = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved


def generated_scenario(
    ports: int,
    *,
    groups: int = 10,
    rules: int = 10,
    seed: int = 1,
    extra_args: Sequence[str] = (),
    generator: Path = GENERATOR,
) -> Path:
    """The path of the generated scenario JSON for these parameters, generating it once."""
    name = "-".join(
        [f"p{ports}", f"g{groups}", f"r{rules}", f"s{seed}", *(a.lstrip("-") for a in extra_args)]
    )
    path = CACHE / f"scenario-{name}.json"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    argv = [str(generator), "--ports", str(ports), "--groups", str(groups), "--rules", str(rules)]
    argv += ["--seed", str(seed), *extra_args, "-o", str(partial)]
    try:
        with _argv(argv):
            runpy.run_path(str(generator), run_name="__main__")
        partial.replace(path)  # atomic: a concurrent run sees the whole file or none
    finally:
        partial.unlink(missing_ok=True)
    return path
