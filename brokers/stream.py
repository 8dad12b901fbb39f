"""Alpaca's trade_updates stream, turned into the project's BrokerOrder values."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from brokers.types import BrokerOrder


def stream_url(base_url: str) -> str:
    """wss://paper-api.alpaca.markets/stream for https://paper-api.alpaca.markets (ws:// for plain http fakes)."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}/stream"


def broker_order_from_update(message: Any) -> BrokerOrder | None:
    """The order inside a trade update (raw JSON from TradingStream(raw_data=True)); None when there is none."""
    from brokers.alpaca import _order  # the one Alpaca order parser, shared with the REST adapter

    if isinstance(message, dict) and isinstance(message.get("data"), dict):
        # TradingStream(raw_data=True) hands over the whole frame: {"stream": "trade_updates", "data": {...}}.
        message = message["data"]
    raw = message.get("order") if isinstance(message, dict) else None
    if not isinstance(raw, dict):
        return None
    return _order(raw)


def trade_updates_stream(handler: Callable[[Any], Awaitable[None]]) -> Any:
    """A TradingStream feeding every trade update to ``handler``; ``run()`` blocks, ``stop()`` ends it.

    alpaca-py's stream reconnects by itself after a dropped connection or a
    failed handshake, waiting 1 s, 2 s, 4 s ... up to 30 s between attempts.
    """
    from alpaca.trading.stream import TradingStream

    stream = TradingStream(
        settings.ALPACA_API_KEY,
        settings.ALPACA_SECRET_KEY,
        paper=settings.TRADING_MODE == "paper",
        raw_data=True,
        url_override=stream_url(settings.ALPACA_BASE_URL),
    )
    stream.subscribe_trade_updates(handler)
    return stream

