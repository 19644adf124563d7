"""Settings, all from environment variables (twelve-factor, like Healthchecks).

Malformed values fail at start-up rather than being silently replaced by defaults.
"""

from __future__ import annotations

import itertools
import os
import warnings
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from sgweb.wire import accounting as wire_accounting
from sgweb.wire import sync as wire_sync

BASE_DIR = Path(__file__).resolve().parent.parent


class ConfigurationError(ValueError):
    pass


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not an integer") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def parse_database_url(url: str) -> dict[str, object]:
    """Turn `sqlite:///path` or `postgres(ql)://user:pw@host:port/name?opt=v` into DATABASES."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative/path or sqlite:////absolute/path
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        if not path:
            raise ConfigurationError(f"DATABASE_URL={url!r} names no SQLite file")
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path,
            # The web server and the control worker write at once; IMMEDIATE takes the write
            # lock up front (no "database is locked" on lock upgrade) and waits up to 20 s.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    if parts.scheme in ("postgres", "postgresql", "pgsql"):
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ConfigurationError(f"DATABASE_URL={url!r} names no database")
        try:
            port = parts.port
        except ValueError:
            raise ConfigurationError(f"DATABASE_URL={url!r} has a malformed port") from None
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        config: dict[str, object] = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": unquote(parts.hostname or ""),
            "PORT": str(port or ""),
            "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 60),
        }
        if options:
            config["OPTIONS"] = options
        return config
    raise ConfigurationError(
        f"DATABASE_URL={url!r}: unsupported scheme {parts.scheme!r} (use sqlite:// or postgresql://)"
    )


DEBUG = env_bool("DEBUG", True)
_DEV_SECRET_KEY = "sgweb-insecure-development-key-change-me"
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ConfigurationError("SECRET_KEY must be set when DEBUG is off")
    warnings.warn("SECRET_KEY is not set; using an insecure development key", stacklevel=1)
    SECRET_KEY = _DEV_SECRET_KEY

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "*" if DEBUG else "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    # Ours, from the base up (see the README's layers).
    "sgweb.audit",
    "sgweb.tenancy",
    "sgweb.security",
    "sgweb.networks",
    "sgweb.hostsync",
    "sgweb.accounting",
    "sgweb.lab",
    "sgweb.live",
    "sgweb.traces",
    "sgweb.operations",
    "sgweb.dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "sgweb.urls"
# The Neutron API has no trailing slashes; redirecting would break POSTs from clients.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "sgweb.wsgi.application"
ASGI_APPLICATION = "sgweb.asgi.application"

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")
DATABASES = {"default": parse_database_url(DATABASE_URL)}
if str(DATABASES["default"]["ENGINE"]).endswith("sqlite3"):
    Path(str(DATABASES["default"]["NAME"])).parent.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
SERVE_STATIC = env_bool("SERVE_STATIC", True)

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 reads with a 5 s socket timeout by default, which ends channels_redis's
        # 5 s blocking receive (BZPOPMIN) with a TimeoutError and kills every idle consumer.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}]},
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "sgweb.api.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "sgweb.api.errors.neutron_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "sgweb Networking API",
    "DESCRIPTION": "OpenStack Networking API v2.0 subset: security groups, rules, ports, "
    "networks and subnets. Authenticate with an API token in X-Auth-Token.",
    "VERSION": "2.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the installed sidecar package, not a CDN: the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Per-project quotas unless an admin sets others (Neutron's defaults).
QUOTA_SECURITY_GROUPS = env_int("QUOTA_SECURITY_GROUPS", 10)
QUOTA_SECURITY_GROUP_RULES = env_int("QUOTA_SECURITY_GROUP_RULES", 100)
# Neutron's default page size is unlimited; we bound pages and give `*_links` with "next",
# which OpenStack clients follow.
API_DEFAULT_PAGE_SIZE = env_int("API_DEFAULT_PAGE_SIZE", 100)
API_MAX_PAGE_SIZE = env_int("API_MAX_PAGE_SIZE", 1000)
# Chain prefix of the hybrid iptables driver (the article's layout).
FIREWALL_CHAIN_PREFIX = env_str("FIREWALL_CHAIN_PREFIX", "neutron-openvswi")
FIREWALL_ENABLE_IPSET = env_bool("FIREWALL_ENABLE_IPSET", True)

# -- Host sync, live events, lab: every SGWEB_* setting of the web side, read once here. The
# agent reads its own (worker.config); the names both sides share live in sgweb.wire.
SGWEB_KEY_PREFIX = env_str("SGWEB_KEY_PREFIX", wire_sync.DEFAULT_KEY_PREFIX)
SGWEB_CONTROL_QUEUE = env_str("SGWEB_CONTROL_QUEUE", wire_sync.DEFAULT_CONTROL_QUEUE)
# Where desired states and heartbeats live, when not in the same Redis as everything else.
SGWEB_SYNC_REDIS_URL = env_str("SGWEB_SYNC_REDIS_URL") or REDIS_URL
# Committed changes are published to the hosts' agents and sent to live browsers. The test
# process turns both off (tests/conftest.py) and on again where a test wants them.
SGWEB_PUBLISH_TO_HOSTS = env_bool("SGWEB_PUBLISH_TO_HOSTS", True)
SGWEB_LIVE_EVENTS = env_bool("SGWEB_LIVE_EVENTS", True)
# A change reaching more hosts than this is published by the control worker, not the request.
SGWEB_PUBLISH_INLINE_HOSTS = env_int("SGWEB_PUBLISH_INLINE_HOSTS", 4)
SGWEB_RECONCILE_INTERVAL_S = env_float("SGWEB_RECONCILE_INTERVAL_S", 5.0)
# Exit when this process ends (test harnesses start workers detached and name themselves).
SGWEB_OWNER_PID = wire_sync.parse_owner_pid(env_str("SGWEB_OWNER_PID"))
SGWEB_RUN_DIR = Path(env_str("SGWEB_RUN_DIR") or BASE_DIR / "var" / "run")
SGWEB_LAB_DIR = Path(env_str("SGWEB_LAB_DIR") or BASE_DIR / "var" / "lab")
# The lab's agents are snappier than a production agent's defaults (see worker.config).
SGWEB_LAB_AGENT_ENV = {
    "SGWEB_DRIFT_INTERVAL_S": env_str("SGWEB_DRIFT_INTERVAL_S", "5"),
    "SGWEB_POLL_INTERVAL_S": env_str("SGWEB_POLL_INTERVAL_S", "2"),
}

# -- Accounting (issue 12): agents send per-origin deltas every SGWEB_ACCOUNTING_INTERVAL_S (the
# lab's agents get it too); series are kept per step for its own retention ("STEP:KEEP,...",
# units s m h d w); /metrics answers a bearer token or the allowed addresses (CIDRs).
SGWEB_ACCOUNTING_INTERVAL_S = env_float(
    "SGWEB_ACCOUNTING_INTERVAL_S", wire_accounting.DEFAULT_INTERVAL_S
)
SGWEB_LAB_AGENT_ENV["SGWEB_ACCOUNTING_INTERVAL_S"] = str(SGWEB_ACCOUNTING_INTERVAL_S)


def parse_duration(text: str, name: str) -> int:
    """ "10s", "1m", "6h", "90d", "2w" -> seconds (a positive whole number)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = text.strip()
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit() or int(number) <= 0:
        raise ConfigurationError(f"{name}: {text!r} is not a duration like 10s, 1m, 6h, 90d")
    return int(number) * units[unit]


def parse_retention(
    text: str, name: str = "SGWEB_ACCOUNTING_RETENTION"
) -> tuple[tuple[int, int], ...]:
    """ "10s:1d,1m:7d,1h:90d" -> ((10, 86400), (60, 604800), (3600, 7776000)), finest first."""
    steps = []
    for item in text.split(","):
        if ":" not in item:
            raise ConfigurationError(f"{name}: {item!r} is not STEP:KEEP (e.g. 10s:1d)")
        step, keep = (parse_duration(part, name) for part in item.split(":", 1))
        if keep < step:
            raise ConfigurationError(f"{name}: {item!r} keeps less than one step")
        steps.append((step, keep))
    steps.sort()
    for (finer, _), (coarser, _) in itertools.pairwise(steps):
        if coarser % finer:
            raise ConfigurationError(f"{name}: step {coarser}s is not a multiple of {finer}s")
    if not steps:
        raise ConfigurationError(f"{name} is empty")
    return tuple(steps)


SGWEB_ACCOUNTING_RETENTION = parse_retention(
    env_str("SGWEB_ACCOUNTING_RETENTION", "10s:1d,1m:7d,1h:90d")
)
# Ports are many (two series each): their finest step is a minute unless set otherwise.
SGWEB_ACCOUNTING_PORT_RETENTION = parse_retention(
    env_str("SGWEB_ACCOUNTING_PORT_RETENTION", "1m:7d,1h:90d"), "SGWEB_ACCOUNTING_PORT_RETENTION"
)
SGWEB_METRICS_TOKEN = env_str("SGWEB_METRICS_TOKEN")
SGWEB_METRICS_ALLOWED_IPS = env_list("SGWEB_METRICS_ALLOWED_IPS", "127.0.0.1/32,::1/128")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
