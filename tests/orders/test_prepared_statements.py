"""Order entry's fixed statements are prepared once per connection (issue 19), and stay correct when they are.

PostgreSQL only: on SQLite the prepared cursor is the plain one.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import DataError, connection
from django.utils import timezone

from orders import selectors
from risk import checks
from tests.conftest import order_body
from tools.bench import history

pytestmark = pytest.mark.django_db

# The hot path's statements, by how each begins (orders/selectors.py, orders/services/entry.py,
# orders/services/transitions.py, orders/api.py, brokers/simulated.py).
HOT_PATH = {
    "the token and its user": 'SELECT row_to_json(t)::text, row_to_json(u)::text FROM "authtoken_token"',
    "the symbols to price": 'SELECT symbol, NULL FROM "orders_position"',
    "the strategy and its grant": "SELECT row_to_json(s)::text, EXISTS(",
    "the account lock": 'SELECT id FROM "risk_riskstate" WHERE id = 1 FOR UPDATE',
    "the snapshot": "WITH limits AS (SELECT * FROM risk_risklimits",
    "the order, its transition and feed entry": 'WITH new_order AS (INSERT INTO "orders_order"',
    "the send's locks": "WITH switch AS (SELECT active FROM risk_killswitch",
    "the acknowledgement": 'WITH new_order AS (UPDATE "orders_order"',
    "the venue's facts": "SELECT EXISTS (SELECT 1 FROM brokers_simorder",
    "the venue's insert": 'INSERT INTO "brokers_simorder"',
    "the last prices (the venue)": "SELECT symbol, price, updated_at FROM brokers_simprice",
}


def _prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE from_sql = false")
        return [" ".join(text.split()) for (text,) in cursor.fetchall()]


def _sell(api, client_order_id: str):
    return api.post("/v1/orders", order_body(client_order_id=client_order_id, side="sell", qty="1"), format="json")


def test_each_statement_on_the_order_entry_path_is_prepared_on_the_connection(alice_api, market, on_postgres):
    _sell(alice_api, "p-0")  # the first order also looks the asset up at the broker
    answer = _sell(alice_api, "p-1")

    assert answer.status_code == 201, answer.content
    assert answer.json()["status"] == "submitted"
    prepared = _prepared()
    missing = [name for name, start in HOT_PATH.items() if not any(text.startswith(start) for text in prepared)]
    assert not missing, f"not prepared: {missing}; prepared: {[text[:60] for text in prepared]}"


def test_the_next_orders_reuse_the_prepared_statements_instead_of_preparing_more(alice_api, market, on_postgres):
    _sell(alice_api, "p-0")  # the first order also looks the asset up at the broker
    _sell(alice_api, "p-1")
    after_one = len(_prepared())

    for index in range(2, 5):  # five in all: the default limit is 5 orders a second
        assert _sell(alice_api, f"p-{index}").status_code == 201

    assert len(_prepared()) == after_one


def test_orders_still_go_through_after_a_migration_adds_columns_to_the_tables_they_read(
    alice_api, market, on_postgres
):
    # As when a deploy migrates while workers still hold their connections: a prepared
    # statement whose result columns follow a table's (SELECT *) would fail with "cached
    # plan must not change result type"; the hot path returns rows as JSON text.
    assert _sell(alice_api, "p-1").status_code == 201
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the test's transaction defers its foreign-key checks
        for table in ("risk_strategy", "risk_risklimits", "risk_riskstate", "orders_order", "orders_position"):
            cursor.execute(f"ALTER TABLE {table} ADD COLUMN added_by_a_later_release integer")

    answer = _sell(alice_api, "p-2")

    assert answer.status_code == 201, answer.content
    assert answer.json()["status"] == "submitted"


def test_a_retry_after_a_rolled_back_transaction_prepares_again_and_is_answered(alice_api, market, on_postgres):
    # psycopg forgets its prepared statements on every ROLLBACK (and a savepoint's).
    assert _sell(alice_api, "p-1").status_code == 201
    with connection.cursor() as cursor:
        cursor.execute("SAVEPOINT before_failure")
        with pytest.raises(DataError):
            cursor.execute("SELECT 1 / 0")
        cursor.execute("ROLLBACK TO SAVEPOINT before_failure")

    replay = _sell(alice_api, "p-1")
    fresh = _sell(alice_api, "p-2")

    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert fresh.status_code == 201, fresh.content


def _scans(plan: dict) -> list[dict]:
    found = [plan] if "Relation Name" in plan else []
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


@pytest.mark.django_db(transaction=True)
def test_with_a_long_history_the_snapshot_plan_made_once_expects_only_recent_rows(alpha, market, on_postgres):
    # 30,000 orders of this strategy (and as many fills) from the year before, analysed, as
    # autovacuum leaves a real table. The snapshot is planned once per connection, without its
    # values (adr/0013): its estimate of the strategy's recent orders and today's fills must
    # still be a handful, not a share of the history, or that plan would scan the history.
    history.load(30_000, strategy_ids=[alpha.pk])
    intent = checks.OrderIntent(strategy=alpha.slug, symbol="AAPL", side="sell", qty=Decimal("1"), type="market")
    selectors.snapshot_rows(strategy_id=alpha.pk, intent=intent, now=timezone.now())

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%FROM risk_risklimits WHERE id = 1%"],
        )
        name, generic, custom = cursor.fetchone()
        now = timezone.now()
        values = [alpha.pk, "AAPL", selectors.trading_day_start(now), now - dt.timedelta(seconds=60),
                  now - dt.timedelta(seconds=1), now, "sell", Decimal("1"), "market", None, None, "denied",
                  now - dt.timedelta(seconds=3600)]
        cursor.execute(f"EXPLAIN (FORMAT JSON) EXECUTE {name}({', '.join(['%s'] * len(values))})", values)
        plan = cursor.fetchone()[0][0]["Plan"]

    assert (generic, custom) == (1, 0)  # the plan made once, used: no plan per execution
    history_scans = [scan for scan in _scans(plan) if scan["Relation Name"] in ("orders_order", "orders_fill")]
    assert history_scans
    for scan in history_scans:
        assert scan["Node Type"] != "Seq Scan", scan
        assert scan["Plan Rows"] < 300, f"{scan['Relation Name']}: {scan['Plan Rows']} rows expected"
