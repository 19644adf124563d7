"""Helpers shared by the network, subnet, port and host actions."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.db import transaction

from sgweb import dispatch

UNSET: Any = object()


def notify(hosts: Iterable[str], reason: str, kind: str, payload: dict, project_id: Any) -> None:
    names = {name for name in hosts if name}
    scope = f"project:{uuid.UUID(str(project_id)).hex}" if project_id else "global"

    def send() -> None:
        if names:
            dispatch.hosts_changed(names, reason)
        dispatch.send_event(kind, payload, scope=scope)

    transaction.on_commit(send)
