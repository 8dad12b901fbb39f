import contextlib
from typing import Any

from django.apps import AppConfig
from django.db import OperationalError
from django.db.backends.signals import connection_created


def use_wal_on_sqlite(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Put a SQLite file in WAL mode (web, worker and beat read while one writes).

    The mode is stored in the file, so it is switched once, only when it is
    not WAL yet. Switching needs an exclusive lock that does not wait on the
    busy timeout: when two processes open a fresh file at once, the one that
    loses finds the other switching it, and that is all it needed.
    """
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        if cursor.fetchone()[0] in ("wal", "memory"):
            return
        # Another process may be switching the same file right now; it will end in WAL either way.
        with contextlib.suppress(OperationalError):
            cursor.execute("PRAGMA journal_mode=WAL")


class BackofficeConfig(AppConfig):
    name = "backoffice"
    verbose_name = "Back office"

    def ready(self) -> None:
        connection_created.connect(use_wal_on_sqlite, dispatch_uid="backoffice-sqlite-wal")
        from backoffice import metrics

        metrics.install()
