"""SQLite, the default, in the production layout while somebody holds the write lock (issue 10,
item 5): before, a bulk create held it for 20-100 s and other tenants' writes and even token
checks failed with "database is locked". Now readers go on beside the writer (WAL), token
checks never wait for it, and writers queue (busy timeout) instead of failing.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from bench.served import ServedSite

SEED = """
import json
from django.contrib.auth.models import User
from sgweb.security import actions as security
from sgweb.tenancy import actions as tenancy
from sgweb.tenancy.choices import Role

admin = User.objects.create_user("adam", password="unused-adam-password")
tenancy.Profile.objects.create(user=admin, role=Role.ADMIN)
project = tenancy.create_project(admin, name="alpha")
web = security.create_security_group(admin, project, name="web")
tokens = [tenancy.create_api_token(admin, name=f"t{n}")[1] for n in range(2)]
print(json.dumps({"tokens": tokens, "group": str(web.id)}))
"""


@pytest.fixture(scope="module")
def site():
    with ServedSite("sqlite", workers=2) as served:
        served.seed = served.python(SEED)
        yield served


def hold_write_lock(site: ServedSite) -> sqlite3.Connection:
    """What a long bulk create does: take the database's write lock and keep it."""
    database = Path(site.env["DATABASE_URL"].removeprefix("sqlite:///"))
    holder = sqlite3.connect(database, timeout=30, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_reads_and_token_checks_go_on_while_somebody_holds_the_write_lock(site):
    holder = hold_write_lock(site)
    try:
        # A token never used before: its check wants to note last_used_at, a write.
        status, body = site.request(
            "GET", "/networking/v2.0/security-groups", site.seed["tokens"][0]
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert status == 200, (body, site.server_errors())
    assert {group["name"] for group in body["security_groups"]} >= {"web"}


def test_a_write_waits_for_the_lock_instead_of_failing(site):
    holder = hold_write_lock(site)
    released = threading.Timer(1.0, lambda: (holder.execute("ROLLBACK"), holder.close()))
    released.start()
    try:
        status, body = site.request(
            "POST",
            "/networking/v2.0/security-group-rules",
            site.seed["tokens"][1],
            {"security_group_rule": {"security_group_id": site.seed["group"],
                                     "direction": "ingress", "protocol": "icmp"}},
        )  # fmt: skip
    finally:
        released.join()
    assert status == 201, (body, site.server_errors())
