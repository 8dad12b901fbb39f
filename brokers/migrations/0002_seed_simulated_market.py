"""Seed the simulated venue: a funded account, a dozen liquid symbols and two edge cases.

Values are written out here rather than imported from ``brokers.models``: a
data migration must keep producing the same rows however the code changes.
"""

from __future__ import annotations

from decimal import Decimal

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.utils import timezone

STARTING_CASH = Decimal("100000.0000")
SEED = 20240601
VOLATILITY = Decimal("0.001")

# (symbol, name, last price): liquid names at plausible prices.
LIQUID_SYMBOLS = [
    ("AAPL", "Apple Inc.", Decimal("190.00")),
    ("MSFT", "Microsoft Corporation", Decimal("420.00")),
    ("SPY", "SPDR S&P 500 ETF Trust", Decimal("560.00")),
    ("QQQ", "Invesco QQQ Trust", Decimal("480.00")),
    ("IWM", "iShares Russell 2000 ETF", Decimal("210.00")),
    ("NVDA", "NVIDIA Corporation", Decimal("120.00")),
    ("TSLA", "Tesla, Inc.", Decimal("250.00")),
    ("AMZN", "Amazon.com, Inc.", Decimal("185.00")),
    ("GOOGL", "Alphabet Inc. Class A", Decimal("165.00")),
    ("META", "Meta Platforms, Inc.", Decimal("500.00")),
    ("AMD", "Advanced Micro Devices, Inc.", Decimal("150.00")),
    ("JPM", "JPMorgan Chase & Co.", Decimal("200.00")),
    # Below the $5.00 minimum stock price (SPEC 4.1): tradable at the venue,
    # so that the back office's own min_price check is what refuses it.
    ("SIRI", "Sirius XM Holdings Inc.", Decimal("3.10")),
]
# Known to the venue but not tradable (delisted): submit answers 422
# "asset TWTR is not tradable". It has no price: nothing trades it.
UNTRADABLE_SYMBOLS = [("TWTR", "Twitter, Inc. (delisted)")]


def seed_market(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    SimAsset = apps.get_model("brokers", "SimAsset")
    SimPrice = apps.get_model("brokers", "SimPrice")
    SimAccount = apps.get_model("brokers", "SimAccount")
    SimState = apps.get_model("brokers", "SimState")
    now = timezone.now()
    for symbol, name, price in LIQUID_SYMBOLS:
        SimAsset.objects.update_or_create(symbol=symbol, defaults={"name": name, "tradable": True})
        SimPrice.objects.update_or_create(symbol=symbol, defaults={"price": price, "updated_at": now})
    for symbol, name in UNTRADABLE_SYMBOLS:
        SimAsset.objects.update_or_create(symbol=symbol, defaults={"name": name, "tradable": False})
    SimAccount.objects.get_or_create(pk=1, defaults={"cash": STARTING_CASH, "last_equity": STARTING_CASH})
    SimState.objects.get_or_create(pk=1, defaults={"seed": SEED, "tick_count": 0, "volatility": VOLATILITY})


def unseed_market(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    symbols = [symbol for symbol, _, _ in LIQUID_SYMBOLS] + [symbol for symbol, _ in UNTRADABLE_SYMBOLS]
    apps.get_model("brokers", "SimPrice").objects.filter(symbol__in=symbols).delete()
    apps.get_model("brokers", "SimAsset").objects.filter(symbol__in=symbols).delete()
    apps.get_model("brokers", "SimAccount").objects.filter(pk=1).delete()
    apps.get_model("brokers", "SimState").objects.filter(pk=1).delete()


class Migration(migrations.Migration):
    dependencies = [("brokers", "0001_initial")]

    operations = [migrations.RunPython(seed_market, unseed_market)]
