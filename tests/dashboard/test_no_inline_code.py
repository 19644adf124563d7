"""Templates carry no inline script, style or event handler, so the pages run under a Content
Security Policy without 'unsafe-inline' (behaviour lives in static/sgweb/js, looks in css)."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
INLINE = {
    "style attribute": re.compile(r"\sstyle=\""),
    "style element": re.compile(r"<style\b"),
    "inline script": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>"),
    "event handler": re.compile(r"\son[a-z]+=\""),
    "javascript: link": re.compile(r"href=\"javascript:"),
}


def test_no_template_has_inline_code() -> None:
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for what, pattern in INLINE.items():
                if pattern.search(line):
                    found.append(f"{path.relative_to(TEMPLATES)}:{number}: {what}")
    assert not found, "\n".join(found)
