"""``manage.py sim_set_price AAPL 191.25``: set a simulated last trade by hand, stamped now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from brokers import simulated


class Command(BaseCommand):
    help = "Set the simulated broker's last trade price for SYMBOL (stamped now; the next tick moves it on)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("symbol", help="a symbol the simulated venue knows, e.g. AAPL")
        parser.add_argument("price", help="a positive price with at most 4 decimal places, e.g. 191.25")

    def handle(self, *args: Any, **options: Any) -> None:
        symbol: str = options["symbol"].strip().upper()
        try:
            # set_price validates both: a known symbol, a positive finite price.
            row = simulated.set_price(symbol, options["price"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{row.symbol} {row.price} at {row.updated_at.isoformat()}")
