"""Celery tasks of the brokers app: each calls one service and nothing more."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from brokers import simulated


# A tick message that waited more than a few intervals is dropped: after a
# worker outage, beat's backlog must not replay as a burst of market moves.
@shared_task(name="brokers.tasks.simulated_market_tick", expires=5 * settings.SIM_TICK_INTERVAL_S)
def simulated_market_tick() -> int | None:
    """Advance the simulated market one tick; a no-op unless settings.BROKER is "simulated".

    Safe to overlap or run twice: ticks serialise on the market's row lock
    (``simulated.tick``), so a second run is simply the next tick, never a
    second fill of the same order. Returns the tick number, or None when skipped.
    """
    if settings.BROKER != "simulated":
        return None
    return simulated.tick().tick_number
