"""Bulk-loaded order history: terminal orders and their fills, all older than today.

One INSERT ... SELECT over generate_series per batch (PostgreSQL builds the
rows itself; nothing crosses the wire), with the fills inserted by the same
statement from the orders it returned. Half the orders are filled with two
fills each (cumulative 1 and 2), so N orders come with N fills; the rest are
cancelled, denied, rejected or expired. Timestamps are spread over the year
before yesterday, so the history never counts toward today's loss or the
throttle windows: only its size differs between two measurements.

Columns come from the models' ``_meta``: a column this file does not know is
filled with its field's default (or NULL), so a field added later does not
break the load; one with neither fails with the field's name.
"""

from __future__ import annotations

import time
from typing import Any

from django.db import connection, models

from orders.models import Fill, Order
from tools.bench.env import BenchSetupError

PREFIX = "hist-"
BATCH = 100_000
SYMBOLS = ["AAPL", "MSFT", "SPY", "QQQ", "IWM", "NVDA", "TSLA", "AMZN", "GOOGL", "META", "AMD", "JPM"]

_STATUS = (
    "CASE WHEN mod(g, 10) < 5 THEN 'filled' WHEN mod(g, 10) < 7 THEN 'cancelled' "
    "WHEN mod(g, 10) = 7 THEN 'denied' WHEN mod(g, 10) = 8 THEN 'rejected' ELSE 'expired' END"
)
_DENIED = "mod(g, 10) = 7"
_FILLED = "mod(g, 10) < 5"
_VIOLATION = (
    '[{"code": "max_notional", "message": "The order\'\'s notional (qty x price) is above the limit.", '
    '"limit": "25000", "actual": "30150.00"}]'
)

ORDER_SQL = {
    "id": "gen_random_uuid()",
    "client_order_id": f"'{PREFIX}' || g::text",
    "strategy": "(%(strategies)s::bigint[])[1 + mod(g, %(n_strategies)s)]",
    "submitted_by": "NULL",
    "symbol": "(%(symbols)s::text[])[1 + mod(g, %(n_symbols)s)]",
    "side": "CASE WHEN mod(g, 2) = 0 THEN 'buy' ELSE 'sell' END",
    "qty": "2",
    "type": "CASE WHEN mod(g, 3) = 0 THEN 'market' ELSE 'limit' END",
    "limit_price": "CASE WHEN mod(g, 3) = 0 THEN NULL ELSE 100.5 END",
    "time_in_force": "'day'",
    "stop_loss": "NULL",
    "extended_hours": "false",
    "origin": "'client'",
    "fingerprint": "'history'",
    "status": _STATUS,
    "filled_qty": f"CASE WHEN {_FILLED} THEN 2 ELSE 0 END",
    "filled_avg_price": f"CASE WHEN {_FILLED} THEN 100.5 END",
    "broker_order_id": f"CASE WHEN {_DENIED} THEN NULL ELSE gen_random_uuid()::text END",
    "reject_reason": "CASE WHEN mod(g, 10) = 8 THEN 'insufficient buying power' ELSE '' END",
    "violations": f"CASE WHEN {_DENIED} THEN '{_VIOLATION}'::jsonb ELSE '[]'::jsonb END",
    "created_at": "t",
    "updated_at": "t + interval '2 seconds'",
    "sent_at": f"CASE WHEN {_DENIED} THEN NULL ELSE t END",
    "broker_updated_at": f"CASE WHEN {_DENIED} THEN NULL ELSE t + interval '2 seconds' END",
}
FILL_SQL = {
    "order": "ins.id",
    "strategy": "ins.strategy_id",
    "symbol": "ins.symbol",
    "side": "ins.side",
    "qty": "1",
    "price": "100.5",
    "cumulative_qty": "v.c",
    "realized_pnl": "CASE WHEN ins.side = 'sell' THEN 1.25 ELSE 0 END",
    "at": "ins.created_at + make_interval(secs => v.c)",
}


def _select_list(model: type[models.Model], known: dict[str, str]) -> tuple[list[str], list[str], dict[str, Any]]:
    columns, expressions, params = [], [], {}
    for field in model._meta.concrete_fields:
        if field.primary_key and isinstance(field, models.AutoField):
            continue  # serial
        columns.append(connection.ops.quote_name(field.column))
        if field.name in known:
            expressions.append(known[field.name])
        elif field.has_default():
            key = f"default_{field.column}"
            params[key] = field.get_db_prep_save(field.get_default(), connection)
            expressions.append(f"%({key})s::{field.db_type(connection)}")
        elif field.null:
            expressions.append("NULL")
        elif field.empty_strings_allowed:
            expressions.append("''")  # what the ORM stores for a text field without a default
        else:
            raise BenchSetupError(
                f"tools/bench/history.py cannot fill {model.__name__}.{field.name} (no default, not null): "
                "add it to the loader"
            )
    return columns, expressions, params


def loaded() -> int:
    """How many history orders are in the database (hist-1 .. hist-N)."""
    return Order.objects.filter(client_order_id__startswith=PREFIX).count()


def load(total: int, *, strategy_ids: list[int], progress: Any = None) -> dict[str, float]:
    """Top the history up to ``total`` orders (and as many fills); returns timings."""
    start_at = loaded() + 1
    started = time.perf_counter()
    order_columns, order_exprs, order_params = _select_list(Order, ORDER_SQL)
    fill_columns, fill_exprs, fill_params = _select_list(Fill, FILL_SQL)
    statement = f"""
        WITH ins AS (
            INSERT INTO {Order._meta.db_table} ({", ".join(order_columns)})
            SELECT {", ".join(order_exprs)}
            FROM (
                SELECT g, (now() - interval '1 day' - make_interval(secs => mod(g * 7919, 31536000))) AS t
                FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
            ) AS series
            RETURNING id, strategy_id, symbol, side, status, created_at
        )
        INSERT INTO {Fill._meta.db_table} ({", ".join(fill_columns)})
        SELECT {", ".join(fill_exprs)}
        FROM ins CROSS JOIN (VALUES (1), (2)) AS v(c)
        WHERE ins.status = 'filled'
    """
    params = {
        **order_params,
        **fill_params,
        "strategies": strategy_ids,
        "n_strategies": len(strategy_ids),
        "symbols": SYMBOLS,
        "n_symbols": len(SYMBOLS),
    }
    first = start_at
    with connection.cursor() as cursor:
        while first <= total:
            last = min(total, first + BATCH - 1)
            cursor.execute("SET synchronous_commit = off")
            cursor.execute(statement, {**params, "first": first, "last": last})
            if progress:
                progress(f"history: {last:,} / {total:,} orders")
            first = last + 1
        cursor.execute("SET synchronous_commit = on")
    inserted = time.perf_counter() - started
    vacuum_started = time.perf_counter()
    with connection.cursor() as cursor:
        # What autovacuum would have done by the time a real table got this big.
        cursor.execute(f"VACUUM ANALYZE {Order._meta.db_table}")
        cursor.execute(f"VACUUM ANALYZE {Fill._meta.db_table}")
    settle()
    return {"insert_s": inserted, "vacuum_s": time.perf_counter() - vacuum_started}


def table_counts() -> dict[str, int]:
    return {"orders": Order.objects.count(), "fills": Fill.objects.count()}


def settle() -> None:
    """Write the load's dirty pages out now (CHECKPOINT needs a superuser or pg_checkpoint; else skipped).

    Otherwise the next few seconds' commits wait behind the checkpoint the
    load triggered, and the measurement after a big load looks slower than
    the one before it for a reason that has nothing to do with the code.
    """
    from django.db import DatabaseError, transaction

    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")
    except DatabaseError:
        pass
    time.sleep(2)
