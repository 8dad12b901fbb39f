"""Optional push path: apply Alpaca's trade_updates as they happen. Polling stays the safety net."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from brokers.stream import broker_order_from_update, trade_updates_stream
from orders.services import order_apply_broker_update

logger = logging.getLogger(__name__)
LABEL = "stream:trade_updates"


def handle_trade_update(message: Any) -> None:
    """One update, applied through the same service as polling: a repeat changes nothing."""
    broker_order = broker_order_from_update(message)
    if broker_order is not None:
        order_apply_broker_update(broker_order=broker_order, label=LABEL)


def _apply(message: Any) -> None:
    try:
        handle_trade_update(message)
    finally:
        # A long-lived consumer is not a request: drop a connection past its age
        # (or broken) after each update, as Django does at the end of a request.
        close_old_connections()


class Command(BaseCommand):
    help = "Consume Alpaca's trade_updates stream and apply each update (deduplicated, like polling)."

    def handle(self, *args: object, **options: object) -> None:
        if settings.BROKER != "alpaca":
            raise CommandError("stream_trade_updates needs BROKER=alpaca; the simulated broker has no stream")

        async def on_update(message: Any) -> None:
            try:
                await sync_to_async(_apply, thread_sensitive=True)(message)
            except Exception:
                logger.exception("trade update not applied; polling will converge")

        self.stream = trade_updates_stream(on_update)
        self.stdout.write("consuming trade_updates; Ctrl-C to stop")
        self.stream.run()
