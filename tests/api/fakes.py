"""Known fake credentials: configured where a real deployment has its secrets, then looked for everywhere."""

from __future__ import annotations

FAKE_SECRET_KEY = "fake-django-secret-Zq7Lw2Vx9Kp4Rt6Ym1Nb8Hc3Jd5Gf0Sa-unique-enough"
FAKE_ALPACA_API_KEY = "PKFAKE7Q2W9E4R1T6Y3U"  # paper keys start with PK
FAKE_ALPACA_SECRET_KEY = "fakeAlpacaSecret9x8c7v6b5n4m3l2k1j0hZ"
FAKE_DB_PASSWORD = "FakeDbPassw0rd-5e1f9a"
FAKE_REDIS_PASSWORD = "FakeRedisPassw0rd-77c2"
FAKE_DATABASE_URL = f"postgresql://backoffice:{FAKE_DB_PASSWORD}@db.internal:5432/backoffice"
FAKE_CELERY_BROKER_URL = f"redis://:{FAKE_REDIS_PASSWORD}@redis.internal:6379/0"

SECRETS = {
    "DJANGO_SECRET_KEY": FAKE_SECRET_KEY,
    "ALPACA_API_KEY": FAKE_ALPACA_API_KEY,
    "ALPACA_SECRET_KEY": FAKE_ALPACA_SECRET_KEY,
    "the DATABASE_URL password": FAKE_DB_PASSWORD,
    "the CELERY_BROKER_URL password": FAKE_REDIS_PASSWORD,
}


def leaked_secrets(text: str | bytes) -> list[str]:
    """The names of the fake secrets found in ``text``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return [name for name, value in SECRETS.items() if value in text]
