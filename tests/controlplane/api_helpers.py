"""Talking to the Neutron API as a persona, with an X-Auth-Token like a real client."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from sgweb.tenancy.actions import create_api_token

BASE = "/networking/v2.0"


class NeutronClient:
    def __init__(self, user=None, *, key: str | None = None) -> None:
        self.client = Client()
        if key is None and user is not None:
            _, key = create_api_token(user, name="tests")
        self.key = key

    def _headers(self) -> dict[str, str]:
        return {"HTTP_X_AUTH_TOKEN": self.key} if self.key else {}

    def get(self, path: str, params: Any = None):
        return self.client.get(BASE + path, params or {}, **self._headers())

    def post(self, path: str, body: dict):
        return self.client.post(
            BASE + path, json.dumps(body), content_type="application/json", **self._headers()
        )

    def put(self, path: str, body: dict):
        return self.client.put(
            BASE + path, json.dumps(body), content_type="application/json", **self._headers()
        )

    def delete(self, path: str):
        return self.client.delete(BASE + path, **self._headers())


def error_type(response) -> str:
    return response.json()["NeutronError"]["type"]
