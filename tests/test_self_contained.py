"""A user's clone is all there is: nothing in the product, its tests, its benchmarks or its
README points to a folder outside the repository (such as a `../shared` beside it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = re.compile(r"\.\./shared|(?<![\w.])shared/bench/|/work/(?:shared|notes|main)\b")


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    wanted = (".py", ".md", ".html", ".js", ".css", ".txt", ".toml", ".json", ".cfg", "")
    return [ROOT / name for name in listed if Path(name).suffix in wanted]


def test_no_file_of_the_repository_points_outside_it() -> None:
    offenders = []
    for path in tracked_text_files():
        if path == Path(__file__) or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_scenario_format_and_its_generator_are_in_the_repository() -> None:
    assert "## Format" in (ROOT / "bench" / "README.md").read_text()
    assert (ROOT / "bench" / "gen_scenario.py").is_file()
