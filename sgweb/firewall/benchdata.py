"""Generated bench scenarios: `shared/bench/gen_scenario.py` run in-process, cached in `var/bench`.

The shared bench directory sits beside the repository (`<repo>/../shared`), not inside it;
`SGWEB_SHARED_DIR` overrides where it is. The generator runs in this process (`runpy`, with
`sys.argv` set for it), so no bench starts a process of its own.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "var" / "bench"


class SharedDirMissing(FileNotFoundError):
    """The shared bench directory (and its scenario generator) is not where it was looked for."""


def shared_dir() -> Path:
    """`$SGWEB_SHARED_DIR` when set, else `<repo>/../shared`."""
    configured = os.environ.get("SGWEB_SHARED_DIR")
    return Path(configured) if configured else ROOT.parent / "shared"


def generator() -> Path:
    """The scenario generator, or `SharedDirMissing` naming where it was looked for."""
    path = shared_dir() / "bench" / "gen_scenario.py"
    if not path.is_file():
        configured = os.environ.get("SGWEB_SHARED_DIR")
        raise SharedDirMissing(
            f"scenario generator not found at {path}: looked in SGWEB_SHARED_DIR "
            f"({configured or 'unset'}), then {ROOT.parent / 'shared'} (<repo>/../shared)"
        )
    return path


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
) -> Path:
    """The path of the generated scenario JSON for these parameters, generating it once."""
    script = generator()
    name = "-".join(
        [f"p{ports}", f"g{groups}", f"r{rules}", f"s{seed}", *(a.lstrip("-") for a in extra_args)]
    )
    path = CACHE / f"scenario-{name}.json"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    argv = [str(script), "--ports", str(ports), "--groups", str(groups), "--rules", str(rules)]
    argv += ["--seed", str(seed), *extra_args, "-o", str(partial)]
    try:
        with _argv(argv):
            runpy.run_path(str(script), run_name="__main__")
        partial.replace(path)  # atomic: a concurrent run sees the whole file or none
    finally:
        partial.unlink(missing_ok=True)
    return path
