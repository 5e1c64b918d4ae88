"""One settings module, driven by environment variables.

Every value a deployment may change is read here, once. Without ALLOW_DEBUG the
service refuses to start with a missing or placeholder secret, naming the variable.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

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


ALLOW_DEBUG = env_bool("ALLOW_DEBUG")
DEBUG = ALLOW_DEBUG and env_bool("DJANGO_DEBUG", default=True)

# Placeholders that make local runs work; never accepted without ALLOW_DEBUG.
_DEV_SECRETS = {
    "DJANGO_SECRET_KEY": "dev-insecure-django-secret-key-change-me-0123456789",
    "JWT_SECRET_KEY": "devsecret",
    "STRIPE_WEBHOOK_SECRET": "whsec_dev_insecure_local_stripe_secret",
}
_KNOWN_WEAK = {"", "changeme", "change-me", "secret", "devsecret", "default"} | set(_DEV_SECRETS.values())


def env_secret(name: str, *, required: bool = True) -> str:
    value = os.environ.get(name, "").strip()
    if ALLOW_DEBUG:
        return value or _DEV_SECRETS.get(name, "")
    if not value:
        if required:
            raise ImproperlyConfigured(f"{name} is not set. Set it in the environment (or ALLOW_DEBUG=1 for local use).")
        return ""
    for part in value.split(","):
        if part.strip().lower() in _KNOWN_WEAK:
            raise ImproperlyConfigured(f"{name} is a default or placeholder value. Generate a real secret.")
    return value


SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
JWT_SECRET_KEY = env_secret("JWT_SECRET_KEY")
if not ALLOW_DEBUG and len(JWT_SECRET_KEY) < 32:
    raise ImproperlyConfigured("JWT_SECRET_KEY must be at least 32 characters long.")

DATA_DIR = Path(os.environ.get("DATA_DIR") or BASE_DIR / "data").resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]" if ALLOW_DEBUG else "")
if not ALLOW_DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is not set (comma-separated host names).")
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", PUBLIC_BASE_URL)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_fsm",
    "audit",
    "keys_app",
    "sessions_app",
    "invoices_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "payments_site.urls"
WSGI_APPLICATION = "payments_site.wsgi.application"
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

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}",
        # Persistent connections: a new PostgreSQL connection costs ~5.5 ms per request.
        conn_max_age=env_int("CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["keys_app.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "payments_site.parsers.DecimalJSONParser",
        "payments_site.parsers.AnyContentTypeJSONParser",
    ],
    "EXCEPTION_HANDLER": "payments_site.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

# Background work: Celery on Redis when REDIS_URL is set, in-process otherwise.
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A publish must not hang a web request when Redis is down: fail fast, the safety net re-queues.
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5, "socket_connect_timeout": 1, "socket_timeout": 2}
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env_int("CELERY_WORKER_MAX_MEMORY_PER_CHILD", 200_000)  # KiB

CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# Payment providers.
STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "").strip()
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "").strip()
STRIPE_WEBHOOK_SECRETS = [s.strip() for s in env_secret("STRIPE_WEBHOOK_SECRET", required=False).split(",") if s.strip()]
STRIPE_WEBHOOK_TOLERANCE = env_int("STRIPE_WEBHOOK_TOLERANCE", 300)

# Sessions.
SESSION_DEFAULT_TTL_SECONDS = 24 * 3600
SESSION_MIN_TTL_SECONDS = 30 * 60
SESSION_MAX_TTL_SECONDS = 24 * 3600
SESSION_MAX_AMOUNT = Decimal(os.environ.get("SESSION_MAX_AMOUNT", "999999.99"))
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
API_KEY_TOUCH_INTERVAL_SECONDS = 60

# Email: Django's standard names; no EMAIL_HOST prints mail to the console.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "").strip()
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "payments@localhost")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend"
)

# Production hardening; `manage.py check --deploy` is clean when ALLOW_DEBUG is off.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if not ALLOW_DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Fulfilment (invoice, PDF, buyer's key, access link, emails) ---
ACCESS_LINK_TTL_SECONDS = env_int("ACCESS_LINK_TTL_SECONDS", 7 * 24 * 3600)
# The safety net re-queues paid sessions still unfulfilled this long after payment.
FULFILMENT_RETRY_AFTER_SECONDS = env_int("FULFILMENT_RETRY_AFTER_SECONDS", 300)
FULFILMENT_SAFETY_NET_INTERVAL_SECONDS = env_int("FULFILMENT_SAFETY_NET_INTERVAL_SECONDS", 60)
FULFILMENT_MAX_RETRIES = env_int("FULFILMENT_MAX_RETRIES", 10)
# How long an email attempt owns its send; keep it well above EMAIL_TIMEOUT.
FULFILMENT_EMAIL_LEASE_SECONDS = env_int("FULFILMENT_EMAIL_LEASE_SECONDS", 120)
# Without REDIS_URL: run fulfilment on a background thread of the web process (off the request).
FULFILMENT_EAGER_BACKGROUND = env_bool("FULFILMENT_EAGER_BACKGROUND", True)
SESSION_EXPIRY_INTERVAL_SECONDS = env_int("SESSION_EXPIRY_INTERVAL_SECONDS", 60)
CELERY_BEAT_SCHEDULE = {
    "fulfilment-safety-net": {"task": "invoices_app.tasks.fulfilment_safety_net",
                              "schedule": float(FULFILMENT_SAFETY_NET_INTERVAL_SECONDS)},
    "sessions-expire-overdue": {"task": "sessions_app.tasks.sessions_expire_overdue",
                                "schedule": float(SESSION_EXPIRY_INTERVAL_SECONDS)},
}
LOGGING["loggers"]["weasyprint.progress"] = {"level": "WARNING"}
LOGGING["loggers"]["fontTools"] = {"level": "WARNING"}

# --- Performance ---
# An authenticated API key (with its account) is cached for at most this long; revoking,
# rotating or saving a key or its account drops it at once. 0 turns the cache off.
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 60)
if REDIS_URL:
    # A slow or unreachable cache must cost a request a second at most, never hang it.
    CACHES["default"]["OPTIONS"] = {"socket_connect_timeout": 1, "socket_timeout": 1}
