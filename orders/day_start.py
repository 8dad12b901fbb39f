"""Where each position stood when the trading day began, for a strategy's daily P&L.

daily P&L = realised P&L today + (unrealised P&L now - unrealised P&L at the day's start)

which is the change of (realised + unrealised) since the day began: a position
held overnight counts only what it gained or lost today, one opened today
counts since entry (its day-start unrealised P&L is 0). The day is the
exchange's trading day (``risk.models.trading_day``).

A position is marked once per trading day: by the reconciliation job (every
minute, so within a minute of the day's start, while the market is closed),
or, if a fill reaches it first, just before that fill is applied, at the fill's
price (the best price known at that moment). A position not yet marked today
counts its unrealised P&L since entry, as one opened today: a loss is never
dropped for want of a mark.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from brokers.exceptions import BrokerError
from brokers.registry import get_market_data
from orders.models import Position
from risk.models import trading_day

logger = logging.getLogger(__name__)
MONEY_PLACES = Decimal("0.01")


def unrealized_pnl(qty: Decimal, avg_price: Decimal, mark: Decimal) -> Decimal:
    return ((mark - avg_price) * qty).quantize(MONEY_PLACES)


def position_mark_before_fill(position: Position, *, price: Decimal, now: dt.datetime) -> None:
    """Called on the locked position before a fill changes it: the first touch of the day marks it."""
    today = trading_day(now)
    if position.day_start_on == today:
        return
    position.day_start_on = today
    position.day_start_unrealized_pnl = (
        Decimal(0) if position.qty == 0 else unrealized_pnl(position.qty, position.avg_price, price)
    )


def positions_mark_day_start(*, now: dt.datetime | None = None) -> int:
    """Mark every open position not yet marked this trading day at the last trade price. Returns how many."""
    now = now or timezone.now()
    today = trading_day(now)
    unmarked = Position.objects.exclude(qty=0).filter(Q(day_start_on__isnull=True) | ~Q(day_start_on=today))
    symbols = set(unmarked.values_list("symbol", flat=True))
    if not symbols:
        # Flat positions start the day at 0; mark them in one statement so a later fill does not.
        Position.objects.filter(qty=0).exclude(day_start_on=today).update(
            day_start_on=today, day_start_unrealized_pnl=Decimal(0)
        )
        return 0
    try:
        prices = get_market_data().latest_trades(symbols)
    except BrokerError as exc:
        logger.warning("day-start marks postponed, market data unavailable: %s", type(exc).__name__)
        return 0
    marked = 0
    with transaction.atomic():
        for position in unmarked.select_for_update():
            trade = prices.get(position.symbol)
            if trade is None:
                continue  # no price yet: tried again on the next run
            position.day_start_on = today
            position.day_start_unrealized_pnl = unrealized_pnl(position.qty, position.avg_price, trade.price)
            position.save(update_fields=["day_start_on", "day_start_unrealized_pnl", "updated_at"])
            marked += 1
        Position.objects.filter(qty=0).exclude(day_start_on=today).update(
            day_start_on=today, day_start_unrealized_pnl=Decimal(0)
        )
    return marked
