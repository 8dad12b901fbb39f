"""Configuration from the environment, validated once at start-up.

Every process (manage.py, gunicorn, the Celery worker and beat) imports the
settings module, which calls :func:`from_environ`. A bad or contradictory value
raises :class:`ConfigError` with one line that names the variable and the fix;
``settings.py`` prints that line and exits, so an operator never has to read a
traceback to learn that a live deployment points at the paper host.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlsplit

PAPER_TRADING_HOST = "paper-api.alpaca.markets"
LIVE_TRADING_HOST = "api.alpaca.markets"
DEFAULT_DATA_URL = "https://data.alpaca.markets"
MIN_SECRET_KEY_LENGTH = 50


class ConfigError(Exception):
    """A setting that stops start-up; the message names the variable and the fix."""


@dataclass(frozen=True, kw_only=True)
class Config:
    debug: bool
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
    max_price_age_s: int
    order_sync_interval_s: int
    reconcile_interval_s: int
    risk_eval_interval_s: int
    sim_tick_interval_s: int
    sim_market_clock: str
    kill_switch_flatten: bool
    kill_switch_reset_approvals: int
    halt_on_reconciliation_break: bool
    alert_webhook_url: str
    admins: list[tuple[str, str]]
    assumed_stop_distance: Decimal
    secure_ssl_redirect: bool
    hsts_seconds: int
    email_port: int
    log_level: str

    @property
    def secrets(self) -> list[str]:
        """Values that must never appear in a log line, an answer, a page or an e-mail."""
        values = [self.secret_key, self.alpaca_api_key, self.alpaca_secret_key]
        for url in (self.database_url, self.celery_broker_url, self.redis_url or ""):
            password = urlsplit(url).password if "://" in url else None
            if password:
                values.append(password)
        return [v for v in values if v]


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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secret_key(env: Mapping[str, str], debug: bool, var_dir: Path) -> str:
    key = env.get("DJANGO_SECRET_KEY", "").strip()
    if key:
        if not debug and (len(key) < MIN_SECRET_KEY_LENGTH or key.startswith("django-insecure")):
            raise ConfigError(
                f"DJANGO_SECRET_KEY is too weak for a non-debug deployment: use at least "
                f"{MIN_SECRET_KEY_LENGTH} random characters, e.g. from "
                "python -c 'import secrets; print(secrets.token_urlsafe(64))'"
            )
        return key
    if not debug:
        raise ConfigError(
            "DJANGO_SECRET_KEY is not set and DJANGO_DEBUG is off: set DJANGO_SECRET_KEY to a random value, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(64))'"
        )
    # Debug (the embedded default): keep one generated key under var/ so that
    # sessions survive a restart, instead of a well-known key in the source.
    key_file = var_dir / "dev-secret-key"
    if key_file.exists():
        return key_file.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(64)
    key_file.write_text(key)
    key_file.chmod(0o600)
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
    debug = _bool(env, "DJANGO_DEBUG", False)
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
    approvals = _int(env, "KILL_SWITCH_RESET_APPROVALS", 1, minimum=1, maximum=2)
    webhook = env.get("ALERT_WEBHOOK_URL", "").strip()
    if webhook and urlsplit(webhook).scheme not in {"http", "https"}:
        raise ConfigError("ALERT_WEBHOOK_URL must be an http(s) URL, or unset")

    return Config(
        debug=debug,
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
        unknown_order_grace_s=_int(env, "UNKNOWN_ORDER_GRACE_S", 30),
        max_price_age_s=_int(env, "MAX_PRICE_AGE_S", 900),
        order_sync_interval_s=_int(env, "ORDER_SYNC_INTERVAL_S", 5),
        reconcile_interval_s=_int(env, "RECONCILE_INTERVAL_S", 60),
        risk_eval_interval_s=_int(env, "RISK_EVAL_INTERVAL_S", 15),
        sim_tick_interval_s=_int(env, "SIM_TICK_INTERVAL_S", 2),
        sim_market_clock=_choice(env, "SIM_MARKET_CLOCK", "open", ("open", "extended", "closed")),
        kill_switch_flatten=_bool(env, "KILL_SWITCH_FLATTEN", False),
        kill_switch_reset_approvals=approvals,
        halt_on_reconciliation_break=_bool(env, "HALT_ON_RECONCILIATION_BREAK", False),
        alert_webhook_url=webhook,
        admins=_admins(env),
        assumed_stop_distance=_positive_number(env, "ASSUMED_STOP_DISTANCE", "0.05"),
        secure_ssl_redirect=_bool(env, "DJANGO_SECURE_SSL_REDIRECT", True),
        hsts_seconds=_int(env, "DJANGO_HSTS_SECONDS", 31536000, minimum=0),
        email_port=_int(env, "EMAIL_PORT", 25, maximum=65535),
        log_level=_choice(env, "LOG_LEVEL", "info", ("debug", "info", "warning", "error", "critical")).upper(),
    )
