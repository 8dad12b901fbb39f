"""How the back office writes money and percentages for people (admin pages, dashboard, alerts).

One format per kind of number, used everywhere (STYLE 12): dollars with
thousands separators and two places, a minus sign before the dollar sign;
percentages with two places and a space before the sign.
"""

from __future__ import annotations

from decimal import Decimal


def money(value: Decimal | None) -> str:
    if value is None:
        return "—"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def signed_money(value: Decimal) -> str:
    return ("+" if value > 0 else "") + money(value)


def percent(value: Decimal | None, places: int = 2) -> str:
    return "—" if value is None else f"{value:.{places}f} %"
