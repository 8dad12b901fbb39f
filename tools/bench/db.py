"""The benchmark's own database: dropped, created, migrated, seeded with the people a run needs."""

from __future__ import annotations

import psycopg
from psycopg import sql

from tools.bench.env import database_name, maintenance_url


def recreate(database_url: str) -> None:
    """DROP (if there) and CREATE the database named in ``database_url`` (bench names only)."""
    name = database_name(database_url)
    with psycopg.connect(maintenance_url(database_url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def migrate() -> None:
    """Apply every migration (with its data migrations: roles, default limits, the simulated market)."""
    from django.core.management import call_command
    from django.db import connection

    from tools.bench.views import CREATE_TABLE

    call_command("migrate", interactive=False, verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(CREATE_TABLE)
    from tools.bench.history import settle

    settle()
