"""Django for the benchmarks that need the control plane: `python -m bench.<name>` runs outside
`manage.py`, so each such benchmark calls `setup()` before importing models."""

from __future__ import annotations

import os


def setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sgweb.settings")
    # The benchmarks drive Django's test client, whose requests name the host "testserver".
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
    import django

    django.setup()
