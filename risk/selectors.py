"""Reads of risk state that other apps need, with the locking they must take (STYLE: selectors own shared reads)."""

from __future__ import annotations

from django.db import connection


def kill_switch_rows_share_locked_sql(strategy: str) -> str:
    """SELECT of the switches that halt a strategy's sends (the global one and its own), FOR SHARE on PostgreSQL.

    ``strategy``: an SQL expression for the strategy's id (a placeholder, or a
    subquery when the send's lock reads it in the same statement).
    """
    sql = f"SELECT active FROM risk_killswitch WHERE strategy_id IS NULL OR strategy_id = {strategy}"
    return sql + " FOR SHARE" if connection.vendor == "postgresql" else sql


def kill_switch_active_share_locked(*, strategy_id: int) -> bool:
    """Whether the global or the strategy's switch is active, holding both rows FOR SHARE (PostgreSQL).

    Call inside a transaction. Many senders hold the share lock at once;
    ``killswitch_activate`` takes the row FOR UPDATE and so waits for every
    send in flight. On SQLite the IMMEDIATE transaction already serialises the
    send with the activation. Raw SQL because Django's ORM has no FOR SHARE.
    """
    with connection.cursor() as cursor:
        cursor.execute(kill_switch_rows_share_locked_sql("%s"), [strategy_id])
        return any(active for (active,) in cursor.fetchall())
