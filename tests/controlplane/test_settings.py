import pytest

from sgweb.settings import ConfigurationError, env_bool, env_int, parse_database_url


def test_postgres_url_is_parsed_into_django_settings():
    config = parse_database_url("postgresql://postgres:s%40cret@127.0.0.1:5432/sgweb_ci")
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["USER"], config["PASSWORD"]) == ("postgres", "s@cret")
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("127.0.0.1", "5432", "sgweb_ci")


def test_short_postgres_scheme_and_options_are_understood():
    config = parse_database_url("postgres://u@db/name?sslmode=require")
    assert config["OPTIONS"]["sslmode"] == "require"
    assert config["PORT"] == ""


def test_sqlite_url_names_a_file():
    assert parse_database_url("sqlite:////tmp/x.sqlite3")["NAME"] == "/tmp/x.sqlite3"


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "postgresql://u@h/", "postgresql://u@h:port/db", "sqlite://"]
)
def test_unusable_database_urls_fail_loudly(url):
    with pytest.raises(ConfigurationError):
        parse_database_url(url)


def test_malformed_boolean_fails_loudly(monkeypatch):
    monkeypatch.setenv("SGWEB_TEST_FLAG", "maybe")
    with pytest.raises(ConfigurationError, match="SGWEB_TEST_FLAG"):
        env_bool("SGWEB_TEST_FLAG")


def test_booleans_and_integers_from_the_environment(monkeypatch):
    monkeypatch.setenv("SGWEB_TEST_FLAG", "Yes")
    monkeypatch.setenv("SGWEB_TEST_NUMBER", "12")
    assert env_bool("SGWEB_TEST_FLAG") is True
    assert env_int("SGWEB_TEST_NUMBER", 3) == 12
    monkeypatch.setenv("SGWEB_TEST_NUMBER", "twelve")
    with pytest.raises(ConfigurationError):
        env_int("SGWEB_TEST_NUMBER", 3)


def test_browser_session_can_use_the_api(client, alice):
    from tests.personas import PASSWORD

    assert client.login(username="alice", password=PASSWORD)
    assert client.get("/networking/v2.0/security-groups").status_code == 200


def test_openapi_schema_is_published(client, alice):
    response = client.get("/api/schema")
    assert response.status_code == 200
    assert b"/networking/v2.0/security-groups" in response.content


def test_models_and_migrations_agree(db):
    from io import StringIO

    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


def test_api_docs_page_loads_its_assets_locally_not_from_a_cdn(client, db):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert b"cdn" not in response.content.lower()
    assert b"/static/drf_spectacular_sidecar/" in response.content
