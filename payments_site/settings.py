"""One settings module, driven by environment variables.

Every value a deployment may change is read here, once, in the section of the concern it
belongs to; every setting is written once, so what a name holds is what its section says.
Without ALLOW_DEBUG the service refuses to start with a missing or placeholder secret, naming
the variable.

Sections, in order: helpers; mode and secrets; paths and files; HTTP and security; apps and
middleware; database; cache and Redis; Celery; email; API; logging; sessions and idempotency;
payment providers; fulfilment; keys; dashboard and admin; beat (last, as it runs the work of
the sections above at their intervals).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

# --------------------------------------------------------------------------- helpers
# A typo in a variable must stop the start with its name, not fall back to a default silently.

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
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int_item(name: str, item: str) -> int:
    """One item of a comma-separated list of whole seconds (0 or more)."""
    if not item.isdigit():
        raise ImproperlyConfigured(f"{name} must list whole seconds (0 or more), got {item!r}")
    return int(item)


def env_decimal(name: str, default: str) -> Decimal:
    raw = os.environ.get(name, "").strip() or default
    try:
        return Decimal(raw)
    except ArithmeticError:
        raise ImproperlyConfigured(f"{name} must be a decimal number, got {raw!r}") from None


def price_base(base: str) -> str:
    """A price's base: a chain's native coin by symbol (ETH), a token only by its contract address
    (0x…, lower case), so that no token can borrow another asset's price by its name."""
    base = base.strip()
    return base.lower() if base.lower().startswith("0x") else base.upper()


def env_rate_table(name: str, default: str) -> dict[tuple[str, str], Decimal]:
    """"ETH/EUR=3000.00,0xA0b8…/EUR=1.00" -> {("ETH", "EUR"): Decimal("3000.00"), ("0xa0b8…", "EUR"): …}."""
    table = {}
    for item in env_list(name, default):
        pair, sep, price = item.partition("=")
        base, slash, quote = pair.strip().partition("/")
        base, quote = price_base(base), quote.strip().upper()
        try:
            value = Decimal(price.strip())
        except ArithmeticError:
            value = Decimal(0)
        if not (sep and slash and base and quote) or value <= 0:
            raise ImproperlyConfigured(f"{name}: {item!r} is not BASE/QUOTE=PRICE with a positive price.")
        table[(base, quote)] = value
    return table


# --------------------------------------------------------------------------- mode and secrets
# ALLOW_DEBUG is the one switch between a local run and a deployment: it alone may relax the
# secret checks below, and DJANGO_DEBUG can only turn debug off again, never on in production.

ALLOW_DEBUG = env_bool("ALLOW_DEBUG")
DEBUG = ALLOW_DEBUG and env_bool("DJANGO_DEBUG", default=True)
# Live API keys and live sessions are created only without ALLOW_DEBUG (core.modes).
LIVE_MODE_ALLOWED = not ALLOW_DEBUG

# Placeholders that make local runs work; never accepted without ALLOW_DEBUG. A per-mode name
# (STRIPE_TEST_WEBHOOK_SECRET, …) has none of its own: it falls back to its single-mode name.
_DEV_STRIPE_WEBHOOK_SECRET = "whsec_dev_insecure_local_stripe_secret"
_DEV_ONECOM_SECRET = "whsec_ZGV2LWluc2VjdXJlLW9uZWNvbS1zZWNyZXQtMDEyMzQ1"
_DEV_WEB3_SECRET = "dev-insecure-web3-webhook-secret"
_DEV_SECRETS = {
    "DJANGO_SECRET_KEY": "dev-insecure-django-secret-key-change-me-0123456789",
    "JWT_SECRET_KEY": "devsecret-for-local-runs-only-never-in-production",
    "STRIPE_WEBHOOK_SECRET": _DEV_STRIPE_WEBHOOK_SECRET,
    "ONECOM_WEBHOOK_SECRET": _DEV_ONECOM_SECRET,
    "WEB3_WEBHOOK_SECRET": _DEV_WEB3_SECRET,
}
# Values that have been published (in this repository, its docs and its tests) or are guessable.
_PUBLISHED = {
    "whsec_local", "whsec_secret", "whsec_localstripe_e2e_secret", "sk_test_local",
    "sk_test_localstripe0123456789abcdef", "devsecret-for-local-runs-only-never-in-production",
}
# Lower-cased, as every lookup is.
_KNOWN_WEAK = {value.lower() for value in ({"", "changeme", "change-me", "secret", "devsecret", "default"}
                                           | _PUBLISHED | set(_DEV_SECRETS.values()))}


def env_secret(name: str, *, required: bool = True) -> str:
    value = os.environ.get(name, "").strip()
    if ALLOW_DEBUG:
        return value or _DEV_SECRETS.get(name, "")
    if not value:
        if required:
            raise ImproperlyConfigured(f"{name} is not set. Set it in the environment (or ALLOW_DEBUG=1 for local use).")
        return ""
    # A comma-separated secret is a rotation list: one weak entry is as bad as all of them.
    for part in value.split(","):
        if part.strip().lower() in _KNOWN_WEAK:
            raise ImproperlyConfigured(f"{name} is a default or placeholder value. Generate a real secret.")
    return value


def secret_entropy_bits(secret: str) -> float:
    """A generous upper bound of a secret's entropy, in bits.

    `whsec_<base64>` (Standard Webhooks) counts its decoded bytes; any other string its length
    times the bits of the character classes it uses. A string of few distinct characters
    ("aaaa…", "abab…") counts only what those could carry.
    """
    body = secret.removeprefix("whsec_")
    distinct = len(set(body))
    if distinct < 8:
        return len(body) * math.log2(max(distinct, 1))
    if secret.startswith("whsec_") and not set(body.lower()) <= set("0123456789abcdef"):
        try:
            return len(base64.b64decode(body + "=" * (-len(body) % 4), validate=True)) * 8.0
        except (ValueError, binascii.Error):
            pass  # not base64 (a Stripe secret may be any string): counted as characters below
    # Hex (Stripe's CLI secrets, token_hex) is counted as hex below, never as base64.
    alphabet = 10 if any(c.isdigit() for c in body) else 0
    lower = {c for c in body if c.islower()}
    # Lower-case hex carries 4 bits a character, not log2(36).
    alphabet += (6 if lower <= set("abcdef") else 26) if lower else 0
    alphabet += 26 if any(c.isupper() for c in body) else 0
    alphabet += 32 if any(not c.isalnum() for c in body) else 0
    return len(body) * math.log2(alphabet)


# Stripe issues its signing secrets itself (whsec_ + 32 random letters and digits, about 190 bits):
# those are held to what Stripe makes; every secret we have an operator generate, to 256 bits.
STRIPE_ISSUED_SECRET_BITS = 32 * math.log2(62)


def env_webhook_secret(name: str, *, min_bits: float = 256) -> str:
    """A webhook secret: refused when it is a placeholder, or (without ALLOW_DEBUG) under `min_bits`."""
    value = env_secret(name, required=False)
    if not ALLOW_DEBUG and value:
        for part in value.split(","):
            if secret_entropy_bits(part.strip()) < min_bits - 0.01:
                raise ImproperlyConfigured(
                    f"{name} carries less than 32 bytes of entropy. Generate it with the provider, "
                    "or e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`.")
    return value


SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
JWT_SECRET_KEY = env_secret("JWT_SECRET_KEY")
if not ALLOW_DEBUG and len(JWT_SECRET_KEY) < 32:
    raise ImproperlyConfigured("JWT_SECRET_KEY must be at least 32 characters long.")
# The payment providers' webhook secrets go through env_secret too, in their own section.

# --------------------------------------------------------------------------- paths and files
# Everything the service writes (SQLite, static files, media) lives under DATA_DIR, so one
# volume holds a deployment's state; the code under BASE_DIR stays read-only.

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("DATA_DIR") or BASE_DIR / "data").resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "media/"
# WhiteNoise serves static files from the web process itself: no separate file server to run.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --------------------------------------------------------------------------- HTTP and security
# Production hardening; `manage.py check --deploy` is clean when ALLOW_DEBUG is off.

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]" if ALLOW_DEBUG else "")
if not ALLOW_DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is not set (comma-separated host names).")
# ALLOW_DEBUG serves placeholder secrets: it answers on loopback only (core.loopback checks the
# client's address too), so a debug process started on a server is not reachable from outside.
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1", "testserver"}
if ALLOW_DEBUG and not set(ALLOWED_HOSTS) <= LOOPBACK_HOSTS:
    raise ImproperlyConfigured(
        f"ALLOWED_HOSTS may only name loopback hosts ({', '.join(sorted(LOOPBACK_HOSTS))}) with ALLOW_DEBUG; "
        f"got {', '.join(ALLOWED_HOSTS)}. Unset ALLOW_DEBUG to serve other hosts.")
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", PUBLIC_BASE_URL)
APPEND_SLASH = False

# Behind a TLS proxy: trust X-Forwarded-Proto, and take the client's address from X-Forwarded-For
# only as many hops deep as there are proxies we run (REST_FRAMEWORK's NUM_PROXIES, used by the
# throttles and the admin lockout); a client could write any hop beyond them.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
_trusted_proxy_count = env_int("TRUSTED_PROXY_COUNT", 0)

if not ALLOW_DEBUG:
    # Local runs speak plain http on 127.0.0.1; these would lock a browser out of them.
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Refer sparingly: checkout and access URLs carry session ids and access tokens.
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True

# Content-Security-Policy on the pages customers see; no inline script or style is needed there.
CSP_PATH_PREFIXES = ("/checkout", "/access")
# Origins the pages may fetch from besides their own (e.g. a JSON-RPC node a page talks to directly).
CSP_CONNECT_SRC = env_list("CSP_CONNECT_SRC")
CONTENT_SECURITY_POLICY = os.environ.get(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self' https:; object-src 'none'",
)

# --------------------------------------------------------------------------- apps and middleware

INSTALLED_APPS = [
    "dashboard.admin_config.PaymentsAdminConfig",  # Django admin, with the revenue dashboard as index
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_fsm",
    "core",
    "audit",
    "events_app",
    "keys_app",
    "sessions_app",
    "invoices_app",
    "dashboard",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "corsheaders",
]

MIDDLEWARE = [
    # The request id comes first so every later log line carries it.
    "core.logs.RequestIdMiddleware",
    # With ALLOW_DEBUG, a request from any address but loopback is refused before anything runs.
    *(["core.loopback.LoopbackOnlyMiddleware"] if ALLOW_DEBUG else []),
    "django.middleware.security.SecurityMiddleware",
    # CORS for POST /create_session only, for each merchant's allowed_origins (keys_app/receivers.py).
    "corsheaders.middleware.CorsMiddleware",
    "core.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes' docs ask.
    "axes.middleware.AxesMiddleware",
]

# A web page may call one endpoint: POST /create_session with a publishable key. Which origins may
# is each merchant's allowed_origins (PATCH /account), decided per request by a receiver of
# corsheaders' check_request_enabled; no origin is allowed by these settings alone.
CORS_URLS_REGEX = r"^/create_session$"
CORS_ALLOWED_ORIGINS: list[str] = []
CORS_ALLOW_METHODS = ("POST", "OPTIONS")
CORS_ALLOW_HEADERS = ("content-type", "x-api-key")
CORS_ALLOW_CREDENTIALS = False
CORS_PREFLIGHT_MAX_AGE = 600

ROOT_URLCONF = "payments_site.urls"
WSGI_APPLICATION = "payments_site.wsgi.application"

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

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --------------------------------------------------------------------------- database
# PostgreSQL in production; without DATABASE_URL an SQLite file under DATA_DIR, so that
# `make run` needs nothing installed.

_database = dj_database_url.parse(
    os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}",
    # Persistent connections: a new PostgreSQL connection costs ~5.5 ms per request.
    conn_max_age=env_int("CONN_MAX_AGE", 600),
    conn_health_checks=True,
)
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite has one writer: wait for the lock rather than fail, and take it when a transaction
    # begins, not on its first write, so that two transactions never deadlock upgrading.
    _database |= {"OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"}, "CONN_MAX_AGE": 0}
elif env_bool("DATABASE_PREPARED_STATEMENTS", True):
    # Allow prepared statements (Django turns them off): only core.db asks for them,
    # for the hot paths' few large statements; Django's own cursors bind on the client and
    # never prepare. Off (0) behind a pooler that cannot keep them (PgBouncer before 1.21 in
    # transaction mode).
    _database["OPTIONS"] = {**_database.get("OPTIONS", {}), "prepare_threshold": 1_000_000}
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --------------------------------------------------------------------------- cache and Redis
# One REDIS_URL serves both the cache (throttle counters, API keys) and Celery's broker.
# Without it everything stays in-process: a local cache and eager tasks.

REDIS_URL = os.environ.get("REDIS_URL", "").strip()
CACHES = {
    "default": (
        # A slow or unreachable cache must cost a request a second at most, never hang it:
        # the throttles then let requests through.
        {"BACKEND": "core.cache.RedisCache", "LOCATION": REDIS_URL,
         "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --------------------------------------------------------------------------- Celery
# Background work: Celery on Redis when REDIS_URL is set, in-process otherwise. The periodic
# tasks (CELERY_BEAT_SCHEDULE) are at the end, after the intervals they run at.

CELERY_BROKER_URL = REDIS_URL or "memory://"
if REDIS_URL.startswith("redis://"):
    CELERY_BROKER_TRANSPORT = "core.broker:Transport"
CELERY_RESULT_BACKEND = None
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = False
# Work handed on again (a fulfilment whose worker died, a payment made while no worker listened)
# goes ahead of the queue at priority 0; everything else is published at this one. On Redis a
# lower number is served first (kombu keeps one list per priority step: 0, 3, 6, 9).
CELERY_TASK_DEFAULT_PRIORITY = 6
# A task is acknowledged when done, not when taken: a worker that dies mid-task leaves it queued.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A publish must not hang a web request when Redis is down: fail fast, the safety net re-queues.
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5, "socket_connect_timeout": 1, "socket_timeout": 2}
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env_int("CELERY_WORKER_MAX_MEMORY_PER_CHILD", 200_000)  # KiB
# Workers log through the same configuration (JSON in production), not Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --------------------------------------------------------------------------- email
# Django's standard names; no EMAIL_HOST prints mail to the console.

EMAIL_HOST = os.environ.get("EMAIL_HOST", "").strip()
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
# Keep it well below FULFILMENT_EMAIL_LEASE_SECONDS, or a slow send outlives its lease.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "payments@localhost")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "payments_site.mail.ConsoleEmailBackend"
)

# --------------------------------------------------------------------------- API
# Merchants authenticate with API keys, never with the admin's session; every error, DRF's own
# included, leaves in the one `{"error": {...}}` shape.

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["keys_app.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.DecimalJSONParser",
        "core.parsers.AnyContentTypeJSONParser",
    ],
    "EXCEPTION_HANDLER": "core.http.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "core.openapi.AutoSchema",
    "NUM_PROXIES": _trusted_proxy_count,
    "DEFAULT_THROTTLE_CLASSES": ["core.throttling.ApiLimits"],
    # Requests per minute, per API key and per client IP. Counters live in CACHES (Redis in production).
    "DEFAULT_THROTTLE_RATES": {
        "create_session_key": os.environ.get("THROTTLE_CREATE_SESSION_KEY", "120/min"),
        "create_session_ip": os.environ.get("THROTTLE_CREATE_SESSION_IP", "240/min"),
        "api_key": os.environ.get("THROTTLE_API_KEY", "600/min"),
        "api_ip": os.environ.get("THROTTLE_API_IP", "1200/min"),
        "status_session": os.environ.get("THROTTLE_STATUS_SESSION", "60/min"),
        "status_ip": os.environ.get("THROTTLE_STATUS_IP", "20000/min"),
        "checkout_ip": os.environ.get("THROTTLE_CHECKOUT_IP", "30/min"),
        "checkout_session": os.environ.get("THROTTLE_CHECKOUT_SESSION", "10/min"),
        "verify_key": os.environ.get("THROTTLE_VERIFY_KEY", "60000/min"),
        "access_links_ip": os.environ.get("THROTTLE_ACCESS_LINKS_IP", "10/hour"),
        # Sessions from payment links (GET /pay/{slug}, publishable keys): anyone may start one.
        "pay_link_ip": os.environ.get("THROTTLE_PAY_LINK_IP", "20/min"),
        "pay_link": os.environ.get("THROTTLE_PAY_LINK", "300/min"),
        "access_links_address": os.environ.get("THROTTLE_ACCESS_LINKS_ADDRESS", "3/hour"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Payment sessions API",
    "DESCRIPTION": "Create payment sessions, send customers to checkout, follow them to paid. "
                   "Every error has the shape `{\"error\": {\"code\", \"message\", \"field\"}}`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # The docs pages load their scripts from this server, never from a third-party CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Sessions' providers and the account's enabled_providers are the same choice set: one enum.
    "ENUM_NAME_OVERRIDES": {"ProviderEnum": "keys_app.models.PROVIDERS",
                            "StatusEnum": "sessions_app.models.Status",
                            "Web3TransferStatusEnum": "sessions_app.models.Web3Transfer.Status",
                            "EntitlementKeyStatusEnum": "keys_app.models.EntitlementKey.Status",
                            "VerificationCodeEnum": "keys_app.models.EntitlementKey.Verdict"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.openapi.add_webhook_paths",
        "sessions_app.openapi.refine_schema",
        "events_app.openapi.refine_webhook_schema",
    ],
}

# --------------------------------------------------------------------------- logging
# One JSON object per line in production (LOG_FORMAT=json), each with the request id, so that a
# log collector can follow one request across the web process and the workers.

LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain" if ALLOW_DEBUG else "json").strip().lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'plain' or 'json', got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "core.logs.JsonFormatter"},
    },
    "filters": {"request_id": {"()": "core.logs.RequestIdFilter"}, "redact": {"()": "core.logs.RedactTokensFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT,
                             "filters": ["redact", "request_id"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # Chatty at INFO and DEBUG: every SQL statement, every PDF layout step, every font subset.
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "weasyprint.progress": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}

# --------------------------------------------------------------------------- sessions and idempotency

SESSION_DEFAULT_TTL_SECONDS = 24 * 3600
SESSION_MIN_TTL_SECONDS = 30 * 60
SESSION_MAX_TTL_SECONDS = 24 * 3600
SESSION_MAX_AMOUNT = Decimal(os.environ.get("SESSION_MAX_AMOUNT", "999999.99"))
# A retried create with the same Idempotency-Key replays its first answer for this long.
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
# How often beat marks open sessions past their expiry as expired.
SESSION_EXPIRY_INTERVAL_SECONDS = env_int("SESSION_EXPIRY_INTERVAL_SECONDS", 60)
# How often beat brings the dashboard's daily summary up to date (its lag shows on the dashboard).
SUMMARY_REFRESH_INTERVAL_SECONDS = env_int("SUMMARY_REFRESH_INTERVAL_SECONDS", 60)

# --------------------------------------------------------------------------- payment providers

# Every credential exists once per mode (test, live): a test session only ever reaches the
# test credentials, a live session the live ones. The names of a single-mode deployment
# (STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, ONECOM_*, WEB3_PROVIDER_URL, WEB3_CHAIN_ID) are
# fallbacks for both modes; a per-mode name always wins over its fallback
# (docs/configuration.md, "Credentials per mode").

MODES = ("test", "live")


def env_mode_secrets(value: str) -> list[str]:
    """A comma-separated rotation list, as a list."""
    return [part.strip() for part in value.split(",") if part.strip()]


def stripe_key_mode(key: str) -> str | None:
    """The mode a Stripe API key belongs to, from its prefix (sk_test_, rk_live_, …)."""
    for mode in MODES:
        if key.startswith((f"sk_{mode}_", f"rk_{mode}_")):
            return mode
    return None


# Stripe. "checkout" redirects to a Stripe Checkout Session; "payment_intent" creates a
# PaymentIntent for the Payment Element (and for servers without Checkout Sessions, such as
# localstripe). Each key must carry its mode's prefix; STRIPE_SECRET_KEY fills the mode its
# prefix names.
_stripe_fallback_key = os.environ.get("STRIPE_SECRET_KEY", "").strip()
STRIPE_TEST_SECRET_KEY = os.environ.get("STRIPE_TEST_SECRET_KEY", "").strip()
STRIPE_LIVE_SECRET_KEY = os.environ.get("STRIPE_LIVE_SECRET_KEY", "").strip()
for _name, _key, _modes in (("STRIPE_SECRET_KEY", _stripe_fallback_key, MODES),
                            ("STRIPE_TEST_SECRET_KEY", STRIPE_TEST_SECRET_KEY, ("test",)),
                            ("STRIPE_LIVE_SECRET_KEY", STRIPE_LIVE_SECRET_KEY, ("live",))):
    if _key and stripe_key_mode(_key) not in _modes:
        raise ImproperlyConfigured(f"{_name} is not a {' or '.join(_modes)} key: it must start with "
                                   + " or ".join(f"sk_{m}_/rk_{m}_" for m in _modes) + ".")
    if _key and not ALLOW_DEBUG and _key.lower() in _KNOWN_WEAK:
        raise ImproperlyConfigured(f"{_name} is a published placeholder key.")
STRIPE_TEST_SECRET_KEY = STRIPE_TEST_SECRET_KEY or (
    _stripe_fallback_key if stripe_key_mode(_stripe_fallback_key) == "test" else "")
STRIPE_LIVE_SECRET_KEY = STRIPE_LIVE_SECRET_KEY or (
    _stripe_fallback_key if stripe_key_mode(_stripe_fallback_key) == "live" else "")
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "").strip()
# Several secrets, comma-separated, so that a rotation accepts the old and the new at once.
# An event is verified with the secrets of the mode it states (its `livemode`).
_stripe_webhook_fallback = env_webhook_secret("STRIPE_WEBHOOK_SECRET", min_bits=STRIPE_ISSUED_SECRET_BITS)
STRIPE_TEST_WEBHOOK_SECRETS = env_mode_secrets(env_webhook_secret("STRIPE_TEST_WEBHOOK_SECRET", min_bits=STRIPE_ISSUED_SECRET_BITS)
                                               or _stripe_webhook_fallback)
STRIPE_LIVE_WEBHOOK_SECRETS = env_mode_secrets(env_webhook_secret("STRIPE_LIVE_WEBHOOK_SECRET", min_bits=STRIPE_ISSUED_SECRET_BITS)
                                               or _stripe_webhook_fallback)
STRIPE_WEBHOOK_TOLERANCE = env_int("STRIPE_WEBHOOK_TOLERANCE", 300)
STRIPE_CHECKOUT_FLOW = os.environ.get("STRIPE_CHECKOUT_FLOW", "checkout").strip()
if STRIPE_CHECKOUT_FLOW not in ("checkout", "payment_intent"):
    raise ImproperlyConfigured("STRIPE_CHECKOUT_FLOW must be 'checkout' or 'payment_intent'.")

# One.com hosted payment page and the Standard Webhooks secret of its callbacks (whsec_ + base64),
# per mode. Callbacks come to one URL: the secret that verifies one decides its mode
# (sessions_app/providers/onecom_provider.py).
_onecom_url_fallback = os.environ.get("ONECOM_CHECKOUT_URL", "").strip()
ONECOM_TEST_CHECKOUT_URL = os.environ.get("ONECOM_TEST_CHECKOUT_URL", "").strip() or _onecom_url_fallback
ONECOM_LIVE_CHECKOUT_URL = os.environ.get("ONECOM_LIVE_CHECKOUT_URL", "").strip() or _onecom_url_fallback
_onecom_secret_fallback = env_webhook_secret("ONECOM_WEBHOOK_SECRET")
ONECOM_TEST_WEBHOOK_SECRET = env_webhook_secret("ONECOM_TEST_WEBHOOK_SECRET") or _onecom_secret_fallback
ONECOM_LIVE_WEBHOOK_SECRET = env_webhook_secret("ONECOM_LIVE_WEBHOOK_SECRET") or _onecom_secret_fallback
for _name, _secret in (("ONECOM_TEST_WEBHOOK_SECRET", ONECOM_TEST_WEBHOOK_SECRET),
                       ("ONECOM_LIVE_WEBHOOK_SECRET", ONECOM_LIVE_WEBHOOK_SECRET)):
    if _secret and not _secret.startswith("whsec_"):
        raise ImproperlyConfigured(f"{_name} (or ONECOM_WEBHOOK_SECRET) must look like whsec_<base64>.")


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a DNS name (even "127.example.com") may resolve anywhere


def _rpc_url(name: str, url: str) -> str:
    """A node's URL: https://, or http:// to a loopback address only.

    Everything a node answers decides payments; over plain HTTP anyone on the path could answer.
    """
    if not url:
        return url
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and _is_loopback_host(parts.hostname or ""):
        return url
    raise ImproperlyConfigured(f"{name} must be an https:// URL; http:// is allowed only "
                               "for 127.0.0.1, ::1 or localhost.")


# Web3: a chain per mode, read through its node; payments are verified on chain only. The
# defaults under ALLOW_DEBUG suit a local node (chain 31337, one confirmation). WEB3_CHAIN_ID
# fills the modes it may serve: never 1 (mainnet) for test, never 31337 (a local node) for live.
MAINNET_CHAIN_ID, LOCAL_CHAIN_ID = 1, 31337
_web3_url_fallback = os.environ.get("WEB3_PROVIDER_URL", "").strip()
_web3_fallback_chain = env_int("WEB3_CHAIN_ID", LOCAL_CHAIN_ID if ALLOW_DEBUG else MAINNET_CHAIN_ID)
WEB3_TEST_CHAIN_ID = env_int("WEB3_TEST_CHAIN_ID", 0) or (
    _web3_fallback_chain if _web3_fallback_chain != MAINNET_CHAIN_ID else 0)
WEB3_LIVE_CHAIN_ID = env_int("WEB3_LIVE_CHAIN_ID", 0) or (
    _web3_fallback_chain if _web3_fallback_chain != LOCAL_CHAIN_ID else 0)
if WEB3_TEST_CHAIN_ID == MAINNET_CHAIN_ID:
    raise ImproperlyConfigured("WEB3_TEST_CHAIN_ID is 1 (Ethereum mainnet): test mode never takes real coins.")
if WEB3_LIVE_CHAIN_ID == LOCAL_CHAIN_ID:
    raise ImproperlyConfigured("WEB3_LIVE_CHAIN_ID is 31337 (a local development chain): live mode needs a real chain.")
WEB3_TEST_PROVIDER_URL = os.environ.get("WEB3_TEST_PROVIDER_URL", "").strip()
WEB3_LIVE_PROVIDER_URL = os.environ.get("WEB3_LIVE_PROVIDER_URL", "").strip()
_rpc_url("WEB3_PROVIDER_URL", _web3_url_fallback)
WEB3_TEST_PROVIDER_URL = _rpc_url("WEB3_TEST_PROVIDER_URL", WEB3_TEST_PROVIDER_URL) or _web3_url_fallback
WEB3_LIVE_PROVIDER_URL = _rpc_url("WEB3_LIVE_PROVIDER_URL", WEB3_LIVE_PROVIDER_URL) or _web3_url_fallback
# A mode without a chain serves no crypto payments, whatever its URL.
WEB3_TEST_PROVIDER_URL = WEB3_TEST_PROVIDER_URL if WEB3_TEST_CHAIN_ID else ""
WEB3_LIVE_PROVIDER_URL = WEB3_LIVE_PROVIDER_URL if WEB3_LIVE_CHAIN_ID else ""
WEB3_MIN_CONFIRMATIONS = env_int("WEB3_MIN_CONFIRMATIONS", 1 if ALLOW_DEBUG else 12)
WEB3_WEBHOOK_SECRET = env_webhook_secret("WEB3_WEBHOOK_SECRET")
WEB3_WEBHOOK_TOLERANCE = env_int("WEB3_WEBHOOK_TOLERANCE", 300)
WEB3_QUOTE_TTL_SECONDS = env_int("WEB3_QUOTE_TTL_SECONDS", 15 * 60)
WEB3_GRACE_SECONDS = env_int("WEB3_GRACE_SECONDS", 10 * 60)
# After a session fails, its address is still watched this long: a transfer to it is kept as a
# late payment (the merchant is told and may deliver anyway), never ignored.
WEB3_LATE_PAYMENT_WATCH_SECONDS = env_int("WEB3_LATE_PAYMENT_WATCH_SECONDS", 7 * 24 * 3600)
# A payment short of the quote by at most this fraction still pays (0.005 = 0.5 %).
WEB3_AMOUNT_TOLERANCE = env_decimal("WEB3_AMOUNT_TOLERANCE", "0")
# Where prices come from: "fixed" (WEB3_FIXED_RATES, the explicit default) or "chainlink" (on-chain feeds).
WEB3_RATE_SOURCE = os.environ.get("WEB3_RATE_SOURCE", "fixed").strip()
if WEB3_RATE_SOURCE not in ("fixed", "chainlink"):
    raise ImproperlyConfigured("WEB3_RATE_SOURCE must be 'fixed' or 'chainlink'.")
WEB3_FIXED_RATES = env_rate_table("WEB3_FIXED_RATES", "ETH/EUR=3000.00,ETH/USD=3300.00" if ALLOW_DEBUG else "")
# Chainlink AggregatorV3 feeds: "ETH/USD=0x5f4e...,ETH/EUR=0x...", and how old an answer may be.
WEB3_CHAINLINK_FEEDS = dict(
    (f"{price_base(pair.partition('/')[0])}/{pair.partition('/')[2].strip().upper()}", address.strip())
    for pair, _, address in (item.partition("=") for item in env_list("WEB3_CHAINLINK_FEEDS"))
)
WEB3_CHAINLINK_MAX_AGE_SECONDS = env_int("WEB3_CHAINLINK_MAX_AGE_SECONDS", 3600)
# The poller looks at most this many blocks back per run (and at least this far back when it starts).
WEB3_SCAN_MAX_BLOCKS = env_int("WEB3_SCAN_MAX_BLOCKS", 500)
WEB3_POLL_SECONDS = env_int("WEB3_POLL_SECONDS", 30)

# --------------------------------------------------------------------------- fulfilment
# Invoice, PDF, the buyer's key, the access link and the emails, once a session is paid.

ACCESS_LINK_TTL_SECONDS = env_int("ACCESS_LINK_TTL_SECONDS", 7 * 24 * 3600)
# The safety net re-queues paid sessions still unfulfilled this long after payment.
FULFILMENT_RETRY_AFTER_SECONDS = env_int("FULFILMENT_RETRY_AFTER_SECONDS", 300)
FULFILMENT_SAFETY_NET_INTERVAL_SECONDS = env_int("FULFILMENT_SAFETY_NET_INTERVAL_SECONDS", 60)
FULFILMENT_MAX_RETRIES = env_int("FULFILMENT_MAX_RETRIES", 10)
# Paid sessions the relay hands to one fulfil_sessions task at most (invoices_app/relay.py).
FULFILMENT_RELAY_BATCH = env_int("FULFILMENT_RELAY_BATCH", 20)
# How long the relay gathers after a payment before it publishes (a latency of at most this).
FULFILMENT_RELAY_WINDOW_MS = env_int("FULFILMENT_RELAY_WINDOW_MS", 50)
# How long an email attempt owns its send; keep it well above EMAIL_TIMEOUT.
FULFILMENT_EMAIL_LEASE_SECONDS = env_int("FULFILMENT_EMAIL_LEASE_SECONDS", 120)
# The relay's hand-offs that never wait for the safety net (invoices_app/relay.py): on taking
# over, it looks back this far for unfinished payments; while listening, every few seconds it
# hands on runs that began this long ago and whose worker is gone.
FULFILMENT_RELAY_LOOK_BACK_SECONDS = env_int("FULFILMENT_RELAY_LOOK_BACK_SECONDS", 24 * 3600)
FULFILMENT_STALL_SECONDS = env_int("FULFILMENT_STALL_SECONDS", 1)
FULFILMENT_STALL_SWEEP_SECONDS = env_int("FULFILMENT_STALL_SWEEP_SECONDS", 2)
# A stopped run handed on waits this long for a worker to start it before it is handed on again.
FULFILMENT_STALL_REHAND_SECONDS = env_int("FULFILMENT_STALL_REHAND_SECONDS", 30)
FULFILMENT_RELAY_RESUME_PAGES = env_int("FULFILMENT_RELAY_RESUME_PAGES", 50)
# Without REDIS_URL: run fulfilment on a background thread of the web process (off the request).
FULFILMENT_EAGER_BACKGROUND = env_bool("FULFILMENT_EAGER_BACKGROUND", True)

# --------------------------------------------------------------------------- keys
# API keys are checked on every request: keep that off the database's write path and mostly
# off its read path too.

# last_used_at is written at most this often per key, not on every request.
API_KEY_TOUCH_INTERVAL_SECONDS = 60
# An authenticated API key (with its account) is cached for at most this long; revoking,
# rotating or saving a key or its account drops it at once. 0 turns the cache off.
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 60)

# --------------------------------------------------------------------------- merchant webhooks
# Events pushed to merchants' endpoints (events_app, docs/webhooks.md).

# The waits between a delivery's attempts, in seconds (each with +-10% jitter); the first attempt
# is immediate. The default spreads the attempts over about 24 hours.
MERCHANT_WEBHOOK_RETRY_SCHEDULE = [
    env_int_item("MERCHANT_WEBHOOK_RETRY_SCHEDULE", part)
    for part in env_list("MERCHANT_WEBHOOK_RETRY_SCHEDULE", "60,240,1500,5400,10800,18000,50400")
]
# An endpoint is disabled after this many events in a row failed for good, the first of them at
# least MERCHANT_WEBHOOK_DISABLE_AFTER_SECONDS ago; its merchant is warned at the 5th.
MERCHANT_WEBHOOK_DISABLE_AFTER_FAILURES = env_int("MERCHANT_WEBHOOK_DISABLE_AFTER_FAILURES", 10)
MERCHANT_WEBHOOK_DISABLE_AFTER_SECONDS = env_int("MERCHANT_WEBHOOK_DISABLE_AFTER_SECONDS", 12 * 3600)
# Loopback destinations (127.0.0.1, ::1, localhost) for local development; never in production.
MERCHANT_WEBHOOK_ALLOW_LOOPBACK = env_bool("MERCHANT_WEBHOOK_ALLOW_LOOPBACK", ALLOW_DEBUG)
# A delivery handed to a worker is handed on again if it is not done this long after.
MERCHANT_WEBHOOK_REQUEUE_SECONDS = env_int("MERCHANT_WEBHOOK_REQUEUE_SECONDS", 60)
# How often the dispatcher (in a worker) looks for new events and deliveries due.
MERCHANT_WEBHOOK_DISPATCH_INTERVAL_MS = env_int("MERCHANT_WEBHOOK_DISPATCH_INTERVAL_MS", 250)
# Events (and their deliveries) are kept this long for GET /events.
EVENT_RETENTION_DAYS = env_int("EVENT_RETENTION_DAYS", 30)

# --------------------------------------------------------------------------- dashboard and admin
# Admin login: lock an IP out after repeated failures (django-axes, attempts kept in the database).

AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
# Failures count per (username, address): behind one proxy or NAT, a stranger's guesses lock out only
# the name they guessed from that address, never every user there, nor the owner elsewhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The same client address as the throttles see, so TRUSTED_PROXY_COUNT governs both.
AXES_CLIENT_IP_CALLABLE = "core.throttling.login_client_ip"
AXES_VERBOSE = False

# --------------------------------------------------------------------------- beat
# Last because it gathers the periodic work of the sections above, at their intervals. The
# fulfilment safety net is the backstop of every hand-off; the expiry and Web3 polls catch
# what no request or webhook will report.

CELERY_BEAT_SCHEDULE = {
    "fulfilment-safety-net": {"task": "invoices_app.tasks.fulfilment_safety_net",
                              "schedule": float(FULFILMENT_SAFETY_NET_INTERVAL_SECONDS)},
    "sessions-expire-overdue": {"task": "sessions_app.tasks.sessions_expire_overdue",
                                "schedule": float(SESSION_EXPIRY_INTERVAL_SECONDS)},
    "sessions-summary-refresh": {"task": "sessions_app.tasks.sessions_summary_refresh",
                                 "schedule": float(SUMMARY_REFRESH_INTERVAL_SECONDS)},
    "web3-poll-open-sessions": {"task": "sessions_app.crypto.tasks.web3_poll", "schedule": float(WEB3_POLL_SECONDS)},
    # The backstop of the workers' dispatcher (events_app.dispatch), and the 30-day purge.
    "merchant-webhooks-dispatch": {"task": "events_app.tasks.deliveries_dispatch", "schedule": 30.0},
    "events-purge": {"task": "events_app.tasks.events_purge", "schedule": 3600.0},
}
