"""Production defaults: nothing insecure is reachable by accident (issue 10, item 7)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

from sgweb.settings import parse_database_url, secret_key_from_file
from tests.personas import PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def _settings_in_a_fresh_process(tmp_path: Path, **env: str) -> tuple[str, str]:
    """Import the settings as a new process would, with no DEBUG or SECRET_KEY given."""
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY")}
    clean.update({"SECRET_KEY_FILE": str(tmp_path / "secret_key"), **env})
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'sgweb.settings'; "
        "django.setup(); from django.conf import settings; "
        "print(settings.DEBUG, settings.SECRET_KEY)"
    )
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", code],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout, result.stderr


def test_a_fresh_install_runs_without_debug_and_with_its_own_secret_key_quietly(tmp_path):
    first, errors = _settings_in_a_fresh_process(tmp_path)
    debug, key = first.split()
    assert debug == "False"
    assert len(key) >= 50 and "insecure" not in key
    assert errors == "", "no warning on every command"
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    second, _ = _settings_in_a_fresh_process(tmp_path)
    assert second.split()[1] == key, "the key is generated once and kept"


def test_debug_is_on_only_when_asked(tmp_path):
    out, _ = _settings_in_a_fresh_process(tmp_path, DEBUG="1")
    assert out.split()[0] == "True"


def test_the_secret_key_file_is_written_once_and_read_back(tmp_path):
    path = tmp_path / "var" / "secret_key"
    key = secret_key_from_file(path)
    assert secret_key_from_file(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"], "no temporary left behind"


def test_postgres_uses_a_bounded_connection_pool_by_default(monkeypatch):
    config = parse_database_url("postgresql://postgres@127.0.0.1:5432/sgweb")
    assert config["CONN_MAX_AGE"] == 0
    assert config["OPTIONS"]["pool"]["max_size"] == 8
    monkeypatch.setenv("DATABASE_POOL_MAX_SIZE", "20")
    monkeypatch.setenv("DATABASE_POOL_TIMEOUT", "3")
    pool = parse_database_url("postgresql://u@h/db")["OPTIONS"]["pool"]
    assert (pool["max_size"], pool["timeout"]) == (20, 3.0)


def test_without_the_pool_postgres_connections_last_one_request(monkeypatch):
    monkeypatch.setenv("DATABASE_POOL", "0")
    config = parse_database_url("postgresql://u@h/db?sslmode=require")
    assert config["CONN_MAX_AGE"] == 0
    assert config["OPTIONS"] == {"sslmode": "require"}


def test_sqlite_uses_wal_a_busy_timeout_and_immediate_transactions():
    options = parse_database_url("sqlite:////tmp/x.sqlite3")["OPTIONS"]
    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] >= 5
    assert "journal_mode=WAL" in options["init_command"]


def test_a_sqlite_connection_really_runs_in_wal_mode(tmp_path):
    from django.db.backends.sqlite3.base import DatabaseWrapper

    config = parse_database_url(f"sqlite:///{tmp_path}/db.sqlite3")
    defaults = {"ATOMIC_REQUESTS": False, "AUTOCOMMIT": True, "CONN_MAX_AGE": 0,
                "CONN_HEALTH_CHECKS": False, "TIME_ZONE": None, "TEST": {}}  # fmt: skip
    wrapper = DatabaseWrapper({**defaults, **config})
    # Django's own way of opening a connection (its init commands), outside pytest-django's
    # guard of the test database.
    raw = wrapper.get_new_connection(wrapper.get_connection_params())
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    finally:
        raw.close()


def test_an_unknown_page_does_not_list_the_urls(client, db):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert b"URLconf" not in response.content
    assert b"networking/v2.0" not in response.content


def test_pages_carry_a_content_security_policy_without_anything_inline(client, db):
    response = client.get("/accounts/login")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert not re.search(rb"<script(?![^>]*\bsrc=)[^>]*>", response.content)
    assert response.headers["X-Frame-Options"] == "DENY"


def test_the_api_docs_page_has_no_inline_script(client, db):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert not re.search(rb"<script(?![^>]*\bsrc=)[^>]*>", response.content)


def test_over_https_cookies_are_secure_and_browsers_are_told_to_stay_on_https(
    client, alice, settings
):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    response = client.get("/accounts/login", secure=True)
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert response.cookies["csrftoken"]["secure"]
    response = client.post(
        "/accounts/login", {"username": "alice", "password": PASSWORD}, secure=True
    )
    assert response.cookies["sessionid"]["secure"]


def test_https_setting_turns_on_secure_cookies_and_hsts(tmp_path):
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'sgweb.settings'; "
        "django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
        "s.SECURE_PROXY_SSL_HEADER)"
    )
    env = {
        **os.environ,
        "SECRET_KEY_FILE": str(tmp_path / "k"),
        "SGWEB_HTTPS": "1",
        "SGWEB_TRUST_PROXY_HEADERS": "1",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=True,
    ).stdout  # fmt: skip
    assert out.split() == ["True", "True", "31536000", "('HTTP_X_FORWARDED_PROTO',", "'https')"]


def test_repeated_failed_logins_lock_the_username_out_from_that_address(client, alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post("/accounts/login", {"username": "alice", "password": "wrong"})
        assert response.status_code == 200  # the form again, with its error
    response = client.post("/accounts/login", {"username": "alice", "password": "wrong"})
    assert response.status_code == 429
    # Even the right password is refused now: guessing has stopped paying.
    response = client.post("/accounts/login", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    assert "_auth_user_id" not in client.session


def test_a_successful_login_resets_the_failure_count(client, alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/accounts/login", {"username": "alice", "password": "wrong"})
    response = client.post("/accounts/login", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    client.logout()
    client.post("/accounts/login", {"username": "alice", "password": "wrong"})
    response = client.post("/accounts/login", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
