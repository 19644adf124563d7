"""Helpers shared by the network, subnet, port and host actions."""

from __future__ import annotations

from typing import Any

UNSET: Any = object()
