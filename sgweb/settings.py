"""Settings, all from environment variables (twelve-factor, like Healthchecks).

Malformed values fail at start-up rather than being silently replaced by defaults.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from csp.constants import NONE, SELF

from sgweb.firewall.model import COMPAT_NEUTRON, COMPATS
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


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default).strip().lower() or default
    if value not in choices:
        raise ConfigurationError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


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
            # 0 (a connection per request) unless set: under ASGI every request has a context
            # of its own and would leave its connection behind. The WSGI entry point (a fixed
            # set of gunicorn threads) keeps them open: opening and setting up a SQLite file
            # costs more CPU than a small list page (sgweb/wsgi.py).
            "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 0),
            "OPTIONS": {
                # The web server and the control worker write at once; IMMEDIATE takes the
                # write lock up front (no "database is locked" on lock upgrade) and the busy
                # timeout waits up to 20 s for it. WAL lets readers (token checks, list pages)
                # go on while somebody writes; synchronous=NORMAL is WAL's safe setting.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    if parts.scheme in ("postgres", "postgresql", "pgsql"):
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ConfigurationError(f"DATABASE_URL={url!r} names no database")
        try:
            port = parts.port
        except ValueError:
            raise ConfigurationError(f"DATABASE_URL={url!r} has a malformed port") from None
        options: dict[str, object] = {
            key: values[-1] for key, values in parse_qs(parts.query).items()
        }
        config: dict[str, object] = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": unquote(parts.hostname or ""),
            "PORT": str(port or ""),
        }
        return _postgres_connections(config, options)
    raise ConfigurationError(
        f"DATABASE_URL={url!r}: unsupported scheme {parts.scheme!r} (use sqlite:// or postgresql://)"
    )


def _postgres_connections(
    config: dict[str, object], options: dict[str, object]
) -> dict[str, object]:
    """How a PostgreSQL process holds its connections.

    Under the ASGI server every request runs its sync code in a thread of its own, and Django's
    connections are per thread: persistent connections (CONN_MAX_AGE) are left behind by each
    request's thread and exhaust `max_connections`. A pool (psycopg's, Django 5.1+) bounds what
    one process holds, whatever the threads: at most DATABASE_POOL_MAX_SIZE connections, a
    request waiting up to DATABASE_POOL_TIMEOUT seconds for one. Without the pool, each request
    opens and closes its own connection (CONN_MAX_AGE 0)."""
    if env_bool("DATABASE_POOL", True):
        min_size = env_int("DATABASE_POOL_MIN_SIZE", 1)
        max_size = env_int("DATABASE_POOL_MAX_SIZE", 8)
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ConfigurationError(
                f"DATABASE_POOL_MIN_SIZE={min_size} and DATABASE_POOL_MAX_SIZE={max_size}: "
                "need 0 <= min <= max and max >= 1"
            )
        options = {
            **options,
            "pool": {
                "min_size": min_size,
                "max_size": max_size,
                "timeout": env_float("DATABASE_POOL_TIMEOUT", 10.0),
            },
        }
        # Django refuses persistent connections with a pool: the pool keeps them.
        config["CONN_MAX_AGE"] = 0
    else:
        config["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 0)
    if options:
        config["OPTIONS"] = options
    return config


def secret_key_from_file(path: Path) -> str:
    """The key kept in `path`, generated there on first use (mode 0600).

    Several server processes may start at once: the key is written to a temporary file and
    linked into place, so exactly one key wins and every process reads that one."""
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    if key:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    key = path.read_text().strip()
    if not key:
        raise ConfigurationError(f"{path} holds no secret key; remove it to have one generated")
    return key


# Off unless asked: the debug pages list every URL and show settings and tracebacks.
DEBUG = env_bool("DEBUG", False)
# SECRET_KEY signs sessions and CSRF tokens. Given, or generated once and kept in var/.
SECRET_KEY_FILE = Path(env_str("SECRET_KEY_FILE") or BASE_DIR / "var" / "secret_key")
SECRET_KEY = env_str("SECRET_KEY") or secret_key_from_file(SECRET_KEY_FILE)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# -- Serving behind TLS and a reverse proxy (README "Production layout").
# SGWEB_HTTPS: the site is served over https (TLS in front). Cookies are then sent only over
# TLS and browsers are told to use https from now on (HSTS).
SGWEB_HTTPS = env_bool("SGWEB_HTTPS", False)
SESSION_COOKIE_SECURE = SGWEB_HTTPS
CSRF_COOKIE_SECURE = SGWEB_HTTPS
SECURE_HSTS_SECONDS = env_int("SGWEB_HSTS_SECONDS", 31_536_000) if SGWEB_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SGWEB_HSTS_INCLUDE_SUBDOMAINS", False)
# Redirect plain http to https here (usually the proxy in front does it).
SECURE_SSL_REDIRECT = env_bool("SGWEB_SSL_REDIRECT", False)
# SGWEB_TRUST_PROXY_HEADERS: a reverse proxy in front sets X-Forwarded-Proto/-Host and strips
# what clients send; only then may Django believe them. (The client address for login throttling
# comes from the ASGI server: uvicorn --proxy-headers --forwarded-allow-ips=<proxy>.)
SGWEB_TRUST_PROXY_HEADERS = env_bool("SGWEB_TRUST_PROXY_HEADERS", False)
if SGWEB_TRUST_PROXY_HEADERS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

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
    "axes",
    # Ours, from the base up (see the README's layers).
    "sgweb.audit",
    "sgweb.tenancy",
    "sgweb.security",
    "sgweb.networks",
    "sgweb.packetlogs",
    "sgweb.routers",
    "sgweb.fwaas",
    "sgweb.hostsync",
    "sgweb.accounting",
    "sgweb.droplog",
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
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it answers locked-out logins with 429.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # Refuses logins from a username + address that failed too often (django-axes).
    "sgweb.tenancy.backends.LoginThrottlingBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling: after AXES_FAILURE_LIMIT failed logins for one username from one address,
# that pair is locked out for SGWEB_LOGIN_COOLOFF_MINUTES; a success resets the count.
AXES_ENABLED = env_bool("SGWEB_LOGIN_THROTTLING", True)
AXES_FAILURE_LIMIT = env_int("SGWEB_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("SGWEB_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Access records of every successful login would grow without end; failures are kept.
AXES_DISABLE_ACCESS_LOG = True
# Its start-up banner would print on every manage.py command.
AXES_VERBOSE = False

# Content security policy (django-csp): our pages load scripts, styles, images and sockets
# from this site only, and no page may frame them. Templates carry no inline scripts, styles
# or event handlers (tests/dashboard/test_no_inline_code.py keeps it so), so nothing inline is
# allowed; scripts that style elements do it through the CSSOM, which the policy permits.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

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
    "DEFAULT_RENDERER_CLASSES": ["sgweb.api.renderers.FastJSONRenderer"],
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
# Per project, as Neutron's defaults (-1: unlimited).
QUOTA_ROUTERS = env_int("QUOTA_ROUTERS", 10)
QUOTA_FIREWALL_RULES = env_int("QUOTA_FIREWALL_RULES", 100)
QUOTA_FIREWALL_POLICIES = env_int("QUOTA_FIREWALL_POLICIES", 10)
QUOTA_FIREWALL_GROUPS = env_int("QUOTA_FIREWALL_GROUPS", 10)
# Neutron's default page size is unlimited; we bound pages and give `*_links` with "next",
# which OpenStack clients follow.
API_DEFAULT_PAGE_SIZE = env_int("API_DEFAULT_PAGE_SIZE", 100)
API_MAX_PAGE_SIZE = env_int("API_MAX_PAGE_SIZE", 1000)
# Chain prefix of the hybrid iptables driver (the article's layout).
FIREWALL_CHAIN_PREFIX = env_str("FIREWALL_CHAIN_PREFIX", "neutron-openvswi")
FIREWALL_ENABLE_IPSET = env_bool("FIREWALL_ENABLE_IPSET", True)
# Packet logging (Neutron's logging API): each log rule's rate limit (packets/s, burst) and the
# NFLOG group per family the hosts' agents listen on. Neutron's defaults.
PACKET_LOG_RATE = env_int("PACKET_LOG_RATE", 100)
PACKET_LOG_BURST = env_int("PACKET_LOG_BURST", 25)
PACKET_LOG_NFLOG_GROUP_V4 = env_int("PACKET_LOG_NFLOG_GROUP_V4", 10)
PACKET_LOG_NFLOG_GROUP_V6 = env_int("PACKET_LOG_NFLOG_GROUP_V6", 11)
# "neutron" (default): current Neutron's safe DHCP order, only 0.0.0.0 -> 255.255.255.255 DHCP
# passes before the anti-spoofing check; "article": the article's layout line for line, which
# lets a VM send DHCP requests from any address and MAC. Carried to the agents in the desired
# state.
SGWEB_FIREWALL_COMPAT = env_choice("SGWEB_FIREWALL_COMPAT", COMPAT_NEUTRON, COMPATS)

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
# Live sockets check their user's access again on every access change (an event) and, as a
# backstop for changes that send none (a session expiring), every this many seconds.
SGWEB_LIVE_ACCESS_RECHECK_S = env_float("SGWEB_LIVE_ACCESS_RECHECK_S", 30.0)
# A change reaching more hosts than this is published by the control worker, not the request.
SGWEB_PUBLISH_INLINE_HOSTS = env_int("SGWEB_PUBLISH_INLINE_HOSTS", 4)
SGWEB_RECONCILE_INTERVAL_S = env_float("SGWEB_RECONCILE_INTERVAL_S", 5.0)
# Exit when this process ends (test harnesses start workers detached and name themselves).
SGWEB_OWNER_PID = wire_sync.parse_owner_pid(env_str("SGWEB_OWNER_PID"))
SGWEB_RUN_DIR = Path(env_str("SGWEB_RUN_DIR") or BASE_DIR / "var" / "run")
SGWEB_LAB_DIR = Path(env_str("SGWEB_LAB_DIR") or BASE_DIR / "var" / "lab")
# The namespaces of the lab `manage.py up` builds are named with this prefix (tests give theirs).
SGWEB_LAB_PREFIX = env_str("SGWEB_LAB_PREFIX", "sgweb-lab-")
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
# -- Drop log (issue 13): logged flows are kept this long (a duration) and at most this many
# rows; the oldest (by last packet) go first.
SGWEB_PACKET_LOG_RETENTION = parse_duration(
    env_str("SGWEB_PACKET_LOG_RETENTION", "7d"), "SGWEB_PACKET_LOG_RETENTION"
)
SGWEB_PACKET_LOG_MAX_FLOWS = env_int("SGWEB_PACKET_LOG_MAX_FLOWS", 100_000)
SGWEB_METRICS_TOKEN = env_str("SGWEB_METRICS_TOKEN")
SGWEB_METRICS_ALLOWED_IPS = env_list("SGWEB_METRICS_ALLOWED_IPS", "127.0.0.1/32,::1/128")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
