"""Django settings, all from the environment (see backoffice/config.py and README)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from backoffice import config as _config
from core.files import make_private_file

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

try:
    CONFIG = _config.from_environ(os.environ, base_dir=BASE_DIR)
except _config.ConfigError as exc:
    # One actionable line, never a traceback: this runs in manage.py,
    # gunicorn, and the Celery worker and beat alike.
    sys.stderr.write(f"configuration error: {exc}\n")
    sys.exit(2)

DEBUG = CONFIG.debug
SECRET_KEY = CONFIG.secret_key
ALLOWED_HOSTS = CONFIG.allowed_hosts
ADMINS = CONFIG.admins
MANAGERS = ADMINS

INSTALLED_APPS = [
    "backoffice.admin_apps.BackofficeAdminConfig",  # django.contrib.admin with the back office's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, so /v1/docs loads nothing from a CDN
    "django_celery_beat",
    "axes",
    "django_prometheus",
    "core",
    "brokers",
    "risk",
    "orders",
    "backoffice",
]

MIDDLEWARE = [
    # Request/response/exception metrics for GET /metrics (the pair brackets every other middleware).
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads the body (sessions, CSRF, DRF): UTF-8 only, nothing compressed, else 415.
    "core.request_guard.RequestBodyGuard",
    # Serves collected static files (the admin's) under gunicorn, without a proxy.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last but the metrics bracket, as django-axes asks: turns a locked-out login into its lockout page.
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "backoffice.urls"
WSGI_APPLICATION = "backoffice.wsgi.application"

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

DATABASES = {"default": dj_database_url.parse(CONFIG.database_url, conn_max_age=60, conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one SQLite file: WAL lets readers run beside
    # the writer, and IMMEDIATE transactions take the write lock at BEGIN, so
    # two order entries serialise instead of both reading and one failing.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        # journal_mode=WAL is set once per file by backoffice.apps (it persists); setting it
        # here, on every connection, fails when two processes open a fresh file at once.
        "init_command": "PRAGMA synchronous=NORMAL;",
    }
    # The database holds API tokens and password hashes: owner-only from its
    # first byte (SQLite gives its -wal and -shm files the database's mode).
    if DATABASES["default"]["NAME"] not in ("", ":memory:"):
        make_private_file(Path(DATABASES["default"]["NAME"]))
else:
    # Order entry's statements are prepared once per connection and keep the plan made for
    # them (adr/0013): without it PostgreSQL plans the snapshot again for every order once
    # a day of fills makes the generic estimate look dearer. Nothing else is prepared here.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["options"] = f"{_options.get('options', '')} -c plan_cache_mode=force_generic_plan".strip()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if CONFIG.redis_url:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CONFIG.redis_url}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# Admin login lockout (django-axes): a username is locked out from one address
# after ADMIN_LOGIN_FAILURE_LIMIT failures, for ADMIN_LOCKOUT_MINUTES; another
# officer, or the same officer from elsewhere, can still log in. Lifting one:
# docs/runbooks/throttles-and-lockouts.md (admin "Access attempts", or `manage.py axes_reset_username`).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = CONFIG.admin_login_failure_limit
AXES_COOLOFF_TIME = CONFIG.admin_lockout_minutes / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "core.throttles.client_address"  # the throttles' rule: the proxy's X-Forwarded-For
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # a locked-out typist does not extend their own lock
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False  # no start-up banner in every process's output; failures and lockouts are still logged

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Daily limits reset on the exchange's trading day, not UTC midnight.
TRADING_DAY_TIME_ZONE = "America/New_York"
# The end-of-day report is produced once this exchange time has passed (after the 16:00 close).
EOD_REPORT_AFTER = os.environ.get("EOD_REPORT_AFTER", "16:15")
if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", EOD_REPORT_AFTER):
    raise ImproperlyConfigured(f"EOD_REPORT_AFTER must be HH:MM (exchange time), not {EOD_REPORT_AFTER!r}")

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise expects it; collectstatic fills it
LOGIN_URL = "admin:login"

# Request bodies: an order is a few hundred bytes; refuse anything large early.
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024

# --- Security (effective when DEBUG is off) --------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = CONFIG.secure_ssl_redirect
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = CONFIG.hsts_seconds
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

# Error reports (admin e-mails) must not dump connection URLs or the parsed config.
DEFAULT_EXCEPTION_REPORTER_FILTER = "backoffice.logging.SecretsReporterFilter"

# --- E-mail (kill-switch and circuit-breaker alerts go to ADMINS) ----------
EMAIL_BACKEND = os.environ.get("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = CONFIG.email_port
SERVER_EMAIL = os.environ.get("SERVER_EMAIL", "backoffice@localhost")

# --- DRF and the /v1 API ---------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.authentication.TokenAuthentication",  # DRF's, its lookup prepared (adr/0013)
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.api.LimitedJSONParser"],
    # A per-client ceiling on every /v1 request, checked after authentication
    # and before the body is parsed (DRF parses lazily) or anything is stored.
    "DEFAULT_THROTTLE_CLASSES": [
        "core.throttles.ClientBurstThrottle",
        "core.throttles.ClientSustainedThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "client_burst": f"{CONFIG.api_client_rate_per_second}/s",
        "client_sustained": f"{CONFIG.api_client_rate_per_minute}/min",
        "client_asset_lookups": f"{CONFIG.api_client_asset_lookups_per_minute}/min",
    },
    # Anonymous callers are counted by address. Behind the deployment's TLS
    # proxy (trusted for X-Forwarded-Proto above) the address is the one the
    # proxy appends to X-Forwarded-For; in debug, REMOTE_ADDR and no header.
    "NUM_PROXIES": 0 if DEBUG else 1,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.problems.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Trading back office API",
    "DESCRIPTION": "Order entry with pre-trade risk checks, positions and risk controls.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # The schema and docs, like every /v1 resource but health, are for authenticated callers.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # The docs page runs with the caller's session: serve Swagger UI ourselves, never a CDN's script.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery ----------------------------------------------------------------
CELERY_BROKER_URL = CONFIG.celery_broker_url
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery" / "queue"
    _queue_dir.mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "celery" / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        # Without this kombu writes its broadcast (pidbox) files to ./control in the working directory.
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message for another
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 50
CELERY_TASK_TIME_LIMIT = 60
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Keep Django's LOGGING (and its secret-redacting filter) in the worker too.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Trading ---------------------------------------------------------------
TRADING_MODE = CONFIG.trading_mode
BROKER = CONFIG.broker
ALPACA_API_KEY = CONFIG.alpaca_api_key
ALPACA_SECRET_KEY = CONFIG.alpaca_secret_key
ALPACA_BASE_URL = CONFIG.alpaca_base_url
ALPACA_DATA_URL = CONFIG.alpaca_data_url
ALPACA_TIMEOUT_S = CONFIG.alpaca_timeout_s
UNKNOWN_ORDER_GRACE_S = CONFIG.unknown_order_grace_s
UNKNOWN_ORDER_HORIZON_S = CONFIG.unknown_order_horizon_s
MAX_PRICE_AGE_S = CONFIG.max_price_age_s
ORDER_SYNC_INTERVAL_S = CONFIG.order_sync_interval_s
CANCEL_RETRY_MAX_S = CONFIG.cancel_retry_max_s
RECONCILE_INTERVAL_S = CONFIG.reconcile_interval_s
RISK_EVAL_INTERVAL_S = CONFIG.risk_eval_interval_s
SIM_TICK_INTERVAL_S = CONFIG.sim_tick_interval_s
# The simulated broker's clock: open (default), extended (only the extended session), closed.
SIM_MARKET_CLOCK = CONFIG.sim_market_clock
# Milliseconds the simulated venue waits on every submit, like a broker's round trip (default 0).
SIM_SUBMIT_LATENCY_MS = CONFIG.sim_submit_latency_ms
# When on, order entry logs the account lock's hold time (logger orders.entry.lock, INFO).
ORDER_ENTRY_LOCK_TIMING = CONFIG.order_entry_lock_timing
KILL_SWITCH_FLATTEN = CONFIG.kill_switch_flatten
KILL_SWITCH_RESET_APPROVALS = CONFIG.kill_switch_reset_approvals
HALT_ON_RECONCILIATION_BREAK = CONFIG.halt_on_reconciliation_break
ALERT_WEBHOOK_URL = CONFIG.alert_webhook_url
ALERT_URLS = CONFIG.alert_urls

# --- Logging: one redacting filter on every handler ------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "backoffice.logging.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_secrets"]},
        "mail_admins": {
            "class": "backoffice.logging.RedactingAdminEmailHandler",
            "level": "ERROR",
            "filters": ["redact_secrets"],
            "include_html": False,
        },
    },
    "root": {"handlers": ["console"], "level": CONFIG.log_level},
    "loggers": {
        "django.request": {"handlers": ["console", "mail_admins"], "level": "ERROR", "propagate": False},
        "urllib3": {"level": "WARNING"},
        # Apprise names its targets at INFO; only its failures are worth a line (and those are redacted).
        "apprise": {"level": "WARNING"},
    },
}
