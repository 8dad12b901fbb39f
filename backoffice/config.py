"""Configuration from the environment, validated once at start-up.

Every process (manage.py, gunicorn, the Celery worker and beat) imports the
settings module, which calls :func:`from_environ`. A bad or contradictory value
raises :class:`ConfigError` with one line that names the variable and the fix;
``settings.py`` prints that line and exits, so an operator never has to read a
traceback to learn that a live deployment points at the paper host.

The embedded default is a property of the checkout, not of ``make run``: when
no production setting is given (:data:`PRODUCTION_SETTINGS` all unset, no
``TRADING_MODE=live``) and ``DJANGO_DEBUG`` is unset, every process runs in
debug mode with SQLite, the filesystem Celery transport and a key generated
once into ``var/dev-secret-key`` (mode 0600). Any production setting, or an
explicit ``DJANGO_DEBUG``, turns that off: a deployment then needs a real
``DJANGO_SECRET_KEY`` and the error says which setting made it a deployment.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlsplit

PAPER_TRADING_HOST = "paper-api.alpaca.markets"
LIVE_TRADING_HOST = "api.alpaca.markets"
DEFAULT_DATA_URL = "https://data.alpaca.markets"
MIN_SECRET_KEY_LENGTH = 50
# Any of these, set and non-empty, means "this is a deployment": the embedded
# default (debug mode, a generated dev key) then never applies by itself.
PRODUCTION_SETTINGS = ("DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "ALLOWED_HOSTS")
DEV_SECRET_KEY_FILE = "dev-secret-key"
NEW_KEY_HINT = "python3 -c 'import secrets; print(secrets.token_urlsafe(64))'"


class ConfigError(Exception):
    """A setting that stops start-up; the message names the variable and the fix."""


def production_settings_given(env: Mapping[str, str]) -> list[str]:
    """The production settings present in ``env``, as ``NAME`` (or ``NAME=value`` for TRADING_MODE)."""
    given = [name for name in PRODUCTION_SETTINGS if env.get(name, "").strip()]
    if env.get("TRADING_MODE", "").strip().lower() == "live":
        given.append("TRADING_MODE=live")
    return given


def embedded_default_applies(env: Mapping[str, str]) -> bool:
    """True when no production setting is given and DJANGO_DEBUG is unset: the checkout's own dev mode."""
    return not env.get("DJANGO_DEBUG", "").strip() and not production_settings_given(env)


def why_not_embedded(env: Mapping[str, str]) -> tuple[str, str]:
    """Why the embedded default does not apply, and how to get it back (for an error message)."""
    debug = env.get("DJANGO_DEBUG", "").strip()
    if debug:
        return f"DJANGO_DEBUG={debug} is set", "unset DJANGO_DEBUG"
    given = production_settings_given(env)
    names = ", ".join(given)
    if len(given) == 1:
        return f"{names} is set (a production setting)", f"unset {names} or set DJANGO_DEBUG=true"
    return f"{names} are set (production settings)", "unset them or set DJANGO_DEBUG=true"


@dataclass(frozen=True, kw_only=True)
class Config:
    debug: bool
    embedded: bool
    secret_key: str = field(repr=False)
    allowed_hosts: list[str]
    database_url: str = field(repr=False)
    celery_broker_url: str = field(repr=False)
    redis_url: str | None = field(repr=False)
    trading_mode: str
    broker: str
    alpaca_api_key: str = field(repr=False)
    alpaca_secret_key: str = field(repr=False)
    alpaca_base_url: str
    alpaca_data_url: str
    alpaca_timeout_s: float
    unknown_order_grace_s: int
    unknown_order_horizon_s: int
    max_price_age_s: int
    order_sync_interval_s: int
    cancel_retry_max_s: Decimal
    reconcile_interval_s: int
    risk_eval_interval_s: int
    sim_tick_interval_s: int
    sim_market_clock: str
    sim_submit_latency_ms: int
    order_entry_lock_timing: bool
    kill_switch_flatten: bool
    kill_switch_reset_approvals: int
    halt_on_reconciliation_break: bool
    alert_webhook_url: str = field(repr=False)
    alert_urls: list[str] = field(repr=False)
    admins: list[tuple[str, str]]
    secure_ssl_redirect: bool
    hsts_seconds: int
    email_port: int
    log_level: str
    api_client_rate_per_second: int
    api_client_rate_per_minute: int
    api_client_asset_lookups_per_minute: int
    admin_login_failure_limit: int
    admin_lockout_minutes: int

    @property
    def secrets(self) -> list[str]:
        """Values that must never appear in a log line, an answer, a page or an e-mail."""
        values = [self.secret_key, self.alpaca_api_key, self.alpaca_secret_key]
        # Alert URLs carry their service's token (a Slack hook path, a bot token, a password).
        for url in (self.alert_webhook_url, *self.alert_urls):
            values.append(url)
            parts = urlsplit(url)
            values += [p for p in (parts.password, parts.username) if p and len(p) >= 8]
            values += [p for p in parts.path.split("/") if len(p) >= 8]
        for url in (self.database_url, self.celery_broker_url, self.redis_url or ""):
            password = urlsplit(url).password if "://" in url else None
            if password:
                values.append(password)
        return [v for v in values if v]


def _alert_urls(env: Mapping[str, str]) -> list[str]:
    """ALERT_URLS: Apprise URLs separated by spaces or commas, each checked by Apprise itself.

    The message names the position of a bad URL, never the URL: it carries a token.
    """
    urls = [u for u in env.get("ALERT_URLS", "").replace(",", " ").split() if u]
    if not urls:
        return []
    import apprise

    for position, url in enumerate(urls, start=1):
        if not apprise.Apprise().add(url):
            raise ConfigError(
                f"ALERT_URLS: URL number {position} is not a URL Apprise can send to "
                "(see Apprise's list of services, e.g. slack://, msteams://, tgram://, mailto://)"
            )
    return urls


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean: use true or false")


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 1, maximum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number: set it to e.g. {default}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(f"{name}={value} is out of range: it must be {bounds}")
    return value


def _positive_number(env: Mapping[str, str], name: str, default: str) -> Decimal:
    raw = env.get(name, "").strip() or default
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ConfigError(f"{name}={raw!r} is not a number: set it to e.g. {default}") from None
    if not value.is_finite() or value <= 0:
        raise ConfigError(f"{name}={raw!r} must be a positive number, e.g. {default}")
    return value


# A gateway can accept an order long after our request timed out: "not found"
# is final only once the horizon covers several of our own timeouts.
HORIZON_TIMEOUTS = 3


def _unknown_order_horizon(env: Mapping[str, str], *, timeout: Decimal, grace: int) -> int:
    horizon = _int(env, "UNKNOWN_ORDER_HORIZON_S", 300)
    floor = max(grace, int((timeout * HORIZON_TIMEOUTS).to_integral_value(rounding=ROUND_CEILING)))
    if horizon < floor:
        raise ConfigError(
            f"UNKNOWN_ORDER_HORIZON_S={horizon} is too short: an ambiguous send is closed as never received only "
            f"after it, so it must be at least UNKNOWN_ORDER_GRACE_S and {HORIZON_TIMEOUTS} x ALPACA_TIMEOUT_S "
            f"(here {floor}); the default is 300"
        )
    return horizon


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(choices)}: set {name} to one of them")
    return value


def _http_url(name: str, value: str) -> str:
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"{name}={value!r} is not an http(s) URL: give e.g. https://{PAPER_TRADING_HOST}")
    if parts.path.rstrip("/").endswith("/v2"):
        raise ConfigError(f"{name} must not end in /v2: alpaca-py adds the version, give {value[: -len('/v2')]}")
    return value


def _secret_key(env: Mapping[str, str], debug: bool, var_dir: Path) -> str:
    key = env.get("DJANGO_SECRET_KEY", "").strip()
    if key:
        if not debug and (len(key) < MIN_SECRET_KEY_LENGTH or key.startswith("django-insecure")):
            raise ConfigError(
                f"DJANGO_SECRET_KEY is too weak for a non-debug deployment: use at least "
                f"{MIN_SECRET_KEY_LENGTH} random characters, e.g. from {NEW_KEY_HINT}"
            )
        return key
    if not debug:
        why, back = why_not_embedded(env)
        raise ConfigError(
            f"DJANGO_SECRET_KEY is not set, and the embedded development default (debug mode, a key generated "
            f"under var/) does not apply because {why}: for a deployment set DJANGO_SECRET_KEY to a random "
            f"value, e.g. from {NEW_KEY_HINT}; for local development {back}"
        )
    return _dev_secret_key(var_dir / DEV_SECRET_KEY_FILE)


def _dev_secret_key(key_file: Path) -> str:
    """Debug mode: one generated key under var/ (mode 0600), so sessions survive a restart.

    Web, worker, beat and a second terminal may start at once: the file is
    created exclusively, already 0600, and a reader that finds it still empty
    waits for the writer instead of making a key of its own.
    """
    key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if key_file.stat().st_mode & 0o077:
            key_file.chmod(0o600)
        for _ in range(50):
            key = key_file.read_text().strip()
            if key:
                return key
            time.sleep(0.05)
        raise ConfigError(f"{key_file} is empty: delete it, and a new development key is generated") from None
    key = secrets.token_urlsafe(64)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def _admins(env: Mapping[str, str]) -> list[tuple[str, str]]:
    raw = env.get("DJANGO_ADMINS", "").strip()
    admins = []
    for address in filter(None, (part.strip() for part in raw.split(","))):
        if "@" not in address:
            raise ConfigError(f"DJANGO_ADMINS has {address!r}, which is not an e-mail address: give a,b@example.com")
        admins.append((address.split("@")[0], address))
    return admins


def _alpaca(env: Mapping[str, str], trading_mode: str) -> tuple[str, str, str, str, str]:
    api_key = env.get("ALPACA_API_KEY", "").strip()
    secret_key = env.get("ALPACA_SECRET_KEY", "").strip()
    if bool(api_key) != bool(secret_key):
        missing = "ALPACA_SECRET_KEY" if api_key else "ALPACA_API_KEY"
        raise ConfigError(f"{missing} is not set: set both ALPACA_API_KEY and ALPACA_SECRET_KEY, or neither")
    broker = _choice(env, "BROKER", "alpaca" if api_key else "simulated", ("simulated", "alpaca"))
    default_base = f"https://{LIVE_TRADING_HOST if trading_mode == 'live' else PAPER_TRADING_HOST}"
    base_url = _http_url("ALPACA_BASE_URL", env.get("ALPACA_BASE_URL", "") or default_base)
    data_url = _http_url("ALPACA_DATA_URL", env.get("ALPACA_DATA_URL", "") or DEFAULT_DATA_URL)
    base_host = urlsplit(base_url).hostname or ""

    if broker == "alpaca" and not api_key:
        raise ConfigError(
            "BROKER=alpaca needs credentials: set ALPACA_API_KEY and ALPACA_SECRET_KEY, or BROKER=simulated"
        )
    if trading_mode == "live":
        if broker != "alpaca":
            raise ConfigError(
                "TRADING_MODE=live needs the Alpaca broker: set BROKER=alpaca with live ALPACA_API_KEY/"
                "ALPACA_SECRET_KEY, or TRADING_MODE=paper"
            )
        if api_key.startswith("PK"):
            raise ConfigError(
                "TRADING_MODE=live with a paper ALPACA_API_KEY (paper keys start with PK): use your live keys, "
                "or TRADING_MODE=paper"
            )
        if base_host != LIVE_TRADING_HOST or urlsplit(base_url).scheme != "https":
            raise ConfigError(
                f"TRADING_MODE=live but ALPACA_BASE_URL points at {base_host}: set ALPACA_BASE_URL="
                f"https://{LIVE_TRADING_HOST} (or unset it), or TRADING_MODE=paper"
            )
    elif base_host == LIVE_TRADING_HOST:
        raise ConfigError(
            f"TRADING_MODE=paper but ALPACA_BASE_URL points at the live host {LIVE_TRADING_HOST}: set "
            f"ALPACA_BASE_URL=https://{PAPER_TRADING_HOST} (or unset it), or TRADING_MODE=live on purpose"
        )
    elif broker == "alpaca" and api_key.startswith("AK") and base_host == PAPER_TRADING_HOST:
        raise ConfigError(
            "TRADING_MODE=paper with a live ALPACA_API_KEY (live keys start with AK): use your paper keys"
        )
    return broker, api_key, secret_key, base_url, data_url


def from_environ(env: Mapping[str, str], *, base_dir: Path) -> Config:
    var_dir = base_dir / "var"
    embedded = embedded_default_applies(env)
    debug = _bool(env, "DJANGO_DEBUG", embedded)
    trading_mode = _choice(env, "TRADING_MODE", "paper", ("paper", "live"))
    broker, api_key, secret_key, base_url, data_url = _alpaca(env, trading_mode)

    redis_url = env.get("REDIS_URL", "").strip() or None
    celery_broker_url = (
        env.get("CELERY_BROKER_URL", "").strip() or redis_url or "filesystem://"
    )
    if not celery_broker_url.startswith(("redis://", "rediss://", "filesystem://", "amqp://", "memory://")):
        raise ConfigError(
            f"CELERY_BROKER_URL={celery_broker_url.split('@')[-1]!r} is not supported: use redis://HOST:6379/0 "
            "or leave it unset for the embedded filesystem:// transport"
        )
    database_url = env.get("DATABASE_URL", "").strip() or f"sqlite:///{var_dir / 'db.sqlite3'}"
    if not database_url.startswith(("sqlite://", "postgres://", "postgresql://", "pgsql://")):
        raise ConfigError("DATABASE_URL must be postgresql://USER@HOST:5432/NAME or sqlite:///PATH")

    allowed_hosts = [h.strip() for h in env.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
    if not debug and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1"]

    timeout = _positive_number(env, "ALPACA_TIMEOUT_S", "10")
    sync_interval_s = _int(env, "ORDER_SYNC_INTERVAL_S", 5)
    # A cancel the back office decided is retried with a back-off that never waits longer than
    # this; by default one sync interval, so a cancel goes out again within a cycle of the
    # broker answering (adr/0011). A 429's X-RateLimit-Reset may push one attempt further.
    cancel_retry_max_s = _positive_number(env, "CANCEL_RETRY_MAX_S", str(sync_interval_s))
    grace = _int(env, "UNKNOWN_ORDER_GRACE_S", 30)
    horizon = _unknown_order_horizon(env, timeout=timeout, grace=grace)
    approvals = _int(env, "KILL_SWITCH_RESET_APPROVALS", 1, minimum=1, maximum=2)
    if env.get("ASSUMED_STOP_DISTANCE", "").strip():
        # Once a setting, read by nothing: the risk limit in the database is what counts.
        raise ConfigError(
            "ASSUMED_STOP_DISTANCE is not a setting: the assumed stop distance is the risk limit "
            "'assumed_stop_distance_pct' (admin: Risk limits). Unset ASSUMED_STOP_DISTANCE."
        )
    webhook = env.get("ALERT_WEBHOOK_URL", "").strip()
    if webhook and urlsplit(webhook).scheme not in {"http", "https"}:
        raise ConfigError("ALERT_WEBHOOK_URL must be an http(s) URL, or unset")
    alert_urls = _alert_urls(env)

    return Config(
        debug=debug,
        embedded=embedded,
        secret_key=_secret_key(env, debug, var_dir),
        allowed_hosts=allowed_hosts,
        database_url=database_url,
        celery_broker_url=celery_broker_url,
        redis_url=redis_url,
        trading_mode=trading_mode,
        broker=broker,
        alpaca_api_key=api_key,
        alpaca_secret_key=secret_key,
        alpaca_base_url=base_url,
        alpaca_data_url=data_url,
        alpaca_timeout_s=float(timeout),
        unknown_order_grace_s=grace,
        unknown_order_horizon_s=horizon,
        max_price_age_s=_int(env, "MAX_PRICE_AGE_S", 900),
        order_sync_interval_s=sync_interval_s,
        cancel_retry_max_s=cancel_retry_max_s,
        reconcile_interval_s=_int(env, "RECONCILE_INTERVAL_S", 60),
        risk_eval_interval_s=_int(env, "RISK_EVAL_INTERVAL_S", 15),
        sim_tick_interval_s=_int(env, "SIM_TICK_INTERVAL_S", 2),
        sim_market_clock=_choice(env, "SIM_MARKET_CLOCK", "open", ("open", "extended", "closed")),
        # A simulated broker round trip on submit (benchmarks: entry latency over the venue's own).
        sim_submit_latency_ms=_int(env, "SIM_SUBMIT_LATENCY_MS", 0, minimum=0, maximum=60_000),
        # Log how long order entry holds the account lock (logger orders.entry.lock); off by default.
        order_entry_lock_timing=_bool(env, "ORDER_ENTRY_LOCK_TIMING", False),
        kill_switch_flatten=_bool(env, "KILL_SWITCH_FLATTEN", False),
        kill_switch_reset_approvals=approvals,
        halt_on_reconciliation_break=_bool(env, "HALT_ON_RECONCILIATION_BREAK", False),
        alert_webhook_url=webhook,
        alert_urls=alert_urls,
        admins=_admins(env),
        secure_ssl_redirect=_bool(env, "DJANGO_SECURE_SSL_REDIRECT", True),
        hsts_seconds=_int(env, "DJANGO_HSTS_SECONDS", 31536000, minimum=0),
        email_port=_int(env, "EMAIL_PORT", 25, maximum=65535),
        log_level=_choice(env, "LOG_LEVEL", "info", ("debug", "info", "warning", "error", "critical")).upper(),
        # The per-client ceiling on /v1 requests (DRF throttles on the shared cache).
        api_client_rate_per_second=_int(env, "API_CLIENT_RATE_PER_SECOND", 50, maximum=100_000),
        api_client_rate_per_minute=_int(env, "API_CLIENT_RATE_PER_MINUTE", 2000, maximum=1_000_000),
        # Broker asset lookups (new symbols) one client may cause per minute; Alpaca allows 200 calls/min per account.
        api_client_asset_lookups_per_minute=_int(env, "API_CLIENT_ASSET_LOOKUPS_PER_MINUTE", 20, maximum=10_000),
        # Admin login lockout (django-axes): failures per username and address, and how long the lock lasts.
        admin_login_failure_limit=_int(env, "ADMIN_LOGIN_FAILURE_LIMIT", 5, maximum=100),
        admin_lockout_minutes=_int(env, "ADMIN_LOCKOUT_MINUTES", 30, maximum=7 * 24 * 60),
    )
