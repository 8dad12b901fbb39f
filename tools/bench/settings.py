"""Bench-only settings: the product's settings, plus the baseline endpoint's URLconf.

Nothing here changes how an order is entered, checked or sent. The differences
from backoffice.settings are:

* ``ROOT_URLCONF = "tools.bench.urls"``: the product's URLs plus the baseline
  endpoint, which is not part of the product.
* A per-process local-memory cache instead of the file (or Redis) cache, so a
  run neither reads nor clears the developer's ``var/cache``. The product's
  only use of the cache on order entry is the tradable-asset lookup, cached
  for an hour either way.
* Logs go to ``var/bench/bench.log`` (the kill-switch alert is CRITICAL and
  would otherwise interleave with the table).
"""

from backoffice.settings import *  # noqa: F403
from backoffice.settings import BASE_DIR, LOGGING

ROOT_URLCONF = "tools.bench.urls"

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "bench"}}

BENCH_DIR = BASE_DIR / "var" / "bench"
BENCH_DIR.mkdir(parents=True, exist_ok=True)

LOGGING = {
    **LOGGING,
    "handlers": {
        "console": {
            "class": "logging.FileHandler",
            "filename": str(BENCH_DIR / "bench.log"),
            "formatter": "plain",
            "filters": ["redact_secrets"],
        },
        "mail_admins": LOGGING["handlers"]["mail_admins"],
        # ORDER_ENTRY_LOCK_TIMING's lines, one per order, read back by tools/bench/b_latency.py.
        "lock_hold": {"class": "logging.FileHandler", "filename": str(BENCH_DIR / "lock-hold.log"), "level": "INFO"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        **LOGGING.get("loggers", {}),
        "orders.entry.lock": {"handlers": ["lock_hold"], "level": "INFO", "propagate": False},
    },
}
