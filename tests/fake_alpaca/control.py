"""Drive a fake Alpaca running as its own process (``python -m tests.fake_alpaca``).

The methods mirror :class:`~tests.fake_alpaca.server.FakeAlpacaServer`'s, over
the ``/_fake/`` control API, so an end-to-end test reads the same whether the
fake runs in-process or beside several web and worker processes.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, cast

import requests

JsonObject = dict[str, Any]


class FakeAlpacaControl:
    def __init__(self, base_url: str, *, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def wait_until_up(self, *, within_s: float = 10.0) -> None:
        deadline = time.monotonic() + within_s
        while True:
            try:
                self._call("GET", "health")
                return
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def set_fault(self, kind: str, **options: Any) -> JsonObject:
        """Same options as FakeAlpacaServer.set_fault: method, path, count, probability, seconds, apply..."""
        return self._object("POST", "faults", {"kind": kind, **options})

    def faults_fired(self, rule_ids: list[int]) -> int:
        """How many requests the rules with these ids have caught so far (cheap to poll)."""
        rules = cast(list[JsonObject], self._call("GET", "faults"))
        return sum(int(rule["fired"]) for rule in rules if rule["id"] in rule_ids)

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def set_prices(self, prices: dict[str, Decimal | str], *, at: str | None = None) -> None:
        self._call("POST", "prices", {"prices": {s: str(p) for s, p in prices.items()}, "at": at})

    def set_price(self, symbol: str, price: Decimal | str) -> None:
        self.set_prices({symbol: price})

    def add_asset(self, symbol: str, *, tradable: bool = True, name: str = "") -> None:
        self._call("POST", "assets", {"symbol": symbol, "tradable": tradable, "name": name})

    def configure(self, **settings: Any) -> JsonObject:
        """fill_mode, cancel_mode, cash, last_equity, market_open, frozen_time (RFC 3339 or None)."""
        return self._object("POST", "config", _plain(settings))

    def place_order(self, **fields: Any) -> JsonObject:
        return self._object("POST", "orders", _plain(fields))

    def fill(self, order_id: str | None = None, **options: Any) -> JsonObject:
        """options: client_order_id, qty, price (all optional)."""
        return self._object("POST", "fill", {"order_id": order_id, **_plain(options)})

    def expire(self, order_id: str | None = None, *, client_order_id: str | None = None) -> JsonObject:
        return self._object("POST", "expire", {"order_id": order_id, "client_order_id": client_order_id})

    def step(self) -> int:
        return int(self._object("POST", "step")["changed"])

    def reset(self, *, seed: int | None = None) -> None:
        self._call("POST", "reset", {} if seed is None else {"seed": seed})

    def state(self) -> JsonObject:
        return self._object("GET", "state")

    @property
    def orders(self) -> list[JsonObject]:
        return cast(list[JsonObject], self._call("GET", "orders"))

    def order(self, order_id: str | None = None, *, client_order_id: str | None = None) -> JsonObject | None:
        """One order as Alpaca would answer it, or None (cheap to poll, unlike ``orders``)."""
        query = {"id": order_id} if order_id else {"client_order_id": client_order_id}
        response = self._session.get(f"{self.base_url}/_fake/order", params=query, timeout=self._timeout_s)
        if response.status_code >= 400:
            raise RuntimeError(f"fake alpaca control GET order: {response.status_code} {response.text}")
        return cast(JsonObject | None, response.json()) if response.content else None

    @property
    def requests(self) -> list[JsonObject]:
        return cast(list[JsonObject], self._call("GET", "requests"))

    @property
    def submissions(self) -> dict[str, int]:
        return cast(dict[str, int], self.state()["submissions"])

    @property
    def faults_injected(self) -> dict[str, int]:
        return cast(dict[str, int], self.state()["faults_injected"])

    def _object(self, method: str, name: str, body: JsonObject | None = None) -> JsonObject:
        return cast(JsonObject, self._call(method, name, body))

    def _call(self, method: str, name: str, body: JsonObject | None = None) -> Any:
        response = self._session.request(method, f"{self.base_url}/_fake/{name}", json=body, timeout=self._timeout_s)
        if response.status_code >= 400:
            raise RuntimeError(f"fake alpaca control {method} {name}: {response.status_code} {response.text}")
        return response.json() if response.content else None


def _plain(values: dict[str, Any]) -> JsonObject:
    """Decimals as strings, as the fake (and Alpaca) want money on the wire."""
    return {key: str(value) if isinstance(value, Decimal) else value for key, value in values.items()}
