"""The traffic of the chaos scenario: API clients that misbehave the way real ones do, and a moving market.

Each :class:`ClientThread` is one API client with its own token, trading its
strategies through both web processes. Besides plain orders it sends the same
``client_order_id`` twice at once from two threads (to the two web processes),
gives up on a request after a few milliseconds and retries it, reuses an id
with another payload, and cancels its resting orders. Every answer is tallied
so the scenario can check the API contract (one creation per id, no 5xx) and
print the figures.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import requests

from tests.fake_alpaca.control import FakeAlpacaControl

# Last trade prices at the fake, held still for the whole run: fills then
# happen at known prices, equity never draws down (no circuit breaker), and a
# limit order away from the price keeps working.
LAST_PRICES: dict[str, Decimal] = {
    "AAPL": Decimal("190.00"),
    "MSFT": Decimal("410.00"),
    "AMZN": Decimal("180.00"),
    "TSLA": Decimal("250.00"),
    "SPY": Decimal("520.00"),
}
CENT = Decimal("0.01")
ANSWER_TIMEOUT_S = 30.0
# The client that gives up: a read timeout far below a normal order entry.
IMPATIENT_TIMEOUT_S = 0.03


@dataclass(frozen=True)
class ApiClient:
    username: str
    token: str
    strategies: tuple[str, ...]


@dataclass
class Tally:
    """Every answer the API gave, counted. Shared by all client threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    orders_attempted: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    status_at_answer: Counter[str] = field(default_factory=Counter)
    denial_codes: Counter[str] = field(default_factory=Counter)
    # client_order_id -> answers that stored an order (201, or 400 risk-denied): at most one each.
    stores: Counter[str] = field(default_factory=Counter)
    duplicate_pairs: dict[str, list[str]] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    ids_answered: set[str] = field(default_factory=set)
    latencies_s: list[float] = field(default_factory=list)  # of POST /v1/orders answered in one go

    def attempt(self) -> int:
        with self.lock:
            self.orders_attempted += 1
            return self.orders_attempted

    def record(self, kind: str, client_order_id: str | None = None, *, status: str | None = None,
               codes: list[str] | None = None) -> None:
        with self.lock:
            self.answers[kind] += 1
            if client_order_id is not None and kind in {"created", "denied", "replayed"}:
                self.ids_answered.add(client_order_id)
            if kind in {"created", "denied"} and client_order_id is not None:
                self.stores[client_order_id] += 1
            if status:
                self.status_at_answer[status] += 1
            for code in codes or []:
                self.denial_codes[code] += 1

    def record_latency(self, seconds: float) -> None:
        with self.lock:
            self.latencies_s.append(seconds)

    def latency_percentiles(self) -> dict[str, float]:
        with self.lock:
            ordered = sorted(self.latencies_s)
        if not ordered:
            return {}
        return {name: ordered[min(len(ordered) - 1, int(len(ordered) * q))]
                for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))}

    def record_unexpected(self, description: str) -> None:
        with self.lock:
            self.answers["unexpected"] += 1
            if len(self.unexpected) < 50:
                self.unexpected.append(description)

    def record_pair(self, client_order_id: str, kinds: list[str]) -> None:
        with self.lock:
            self.duplicate_pairs[client_order_id] = kinds


def order_body(rng: random.Random, strategy: str, client_order_id: str) -> dict[str, str]:
    """Mostly market orders of a few shares; a quarter rest away from the price; some limits cross it."""
    symbol = rng.choice(sorted(LAST_PRICES))
    last = LAST_PRICES[symbol]
    side = rng.choice(["buy", "sell"])
    body = {"client_order_id": client_order_id, "strategy": strategy, "symbol": symbol, "side": side}
    roll = rng.random()
    if roll < 0.65:
        return {**body, "type": "market", "qty": str(rng.randint(1, 5))}
    if roll < 0.90:
        away = Decimal(str(rng.uniform(0.01, 0.04)))
        factor = 1 - away if side == "buy" else 1 + away
        price = (last * factor).quantize(CENT)
        return {**body, "type": "limit", "limit_price": str(price), "qty": str(rng.randint(1, 3))}
    factor = Decimal("1.01") if side == "buy" else Decimal("0.99")
    return {**body, "type": "limit", "limit_price": str((last * factor).quantize(CENT)), "qty": str(rng.randint(1, 3))}


def classify(response: requests.Response) -> tuple[str, dict[str, Any]]:
    """The kind of answer POST /v1/orders gave, by the API's contract (SPEC 5)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = response.status_code
    if code == 201:
        return "created", body
    if code == 200 and response.headers.get("Idempotent-Replayed") == "true":
        return "replayed", body
    if code == 400 and str(body.get("type", "")).endswith("/risk-denied"):
        return "denied", body
    if code == 409:
        return "conflict", body
    return "unexpected", body


THROTTLED_RETRIES = 5


def post_order(session: requests.Session, url: str, body: dict[str, str], *, headers: dict[str, str],
               timeout: Any, tally: Tally) -> requests.Response:
    """POST /v1/orders as the contract tells a client to: a 429 (the per-client ceiling) is sent again,
    same body, after its Retry-After. A 429 still there after THROTTLED_RETRIES is the answer (unexpected)."""
    for _ in range(THROTTLED_RETRIES):
        response = session.post(f"{url}/v1/orders", json=body, headers=headers, timeout=timeout)
        if response.status_code != 429 or not response.headers.get("Retry-After"):
            return response
        tally.record("throttled_then_retried")
        time.sleep(min(float(response.headers["Retry-After"]), 2.0))
    return session.post(f"{url}/v1/orders", json=body, headers=headers, timeout=timeout)


class ClientThread(threading.Thread):
    """One API client submitting its share of the orders, with duplicates, retries, conflicts and cancels."""

    def __init__(
        self,
        *,
        client: ApiClient,
        web_urls: list[str],
        orders: int,
        seed: int,
        tally: Tally,
        deadline: float,
        partial_fills: queue.Queue[str],
    ) -> None:
        super().__init__(name=f"client-{client.username}", daemon=True)
        self.client = client
        self.web_urls = web_urls
        self.orders = orders
        self.rng = random.Random(seed)
        self.tally = tally
        self.deadline = deadline
        self.partial_fills = partial_fills
        self.session = requests.Session()
        self.created: list[dict[str, str]] = []  # bodies this client stored, for conflicts
        self.resting: list[str] = []  # order ids of resting limit orders, for cancels
        self.error: BaseException | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.client.token}"}

    def run(self) -> None:
        try:
            for index in range(self.orders):
                if time.monotonic() > self.deadline:
                    return
                self.tally.attempt()
                client_order_id = f"chaos-{self.client.username}-{index}"
                strategy = self.rng.choice(self.client.strategies)
                body = order_body(self.rng, strategy, client_order_id)
                roll = self.rng.random()
                if roll < 0.04:
                    self.submit_twice_at_once(body)
                elif roll < 0.08:
                    self.submit_impatiently_then_retry(body)
                else:
                    self.submit(body, self.web_urls[index % len(self.web_urls)])
                roll = self.rng.random()
                if roll < 0.015 and self.created:
                    self.reuse_id_with_another_payload()
                elif roll < 0.035 and self.resting:
                    self.cancel_a_resting_order()
        except BaseException as exc:
            self.error = exc

    # -- behaviours -------------------------------------------------------------

    def submit(self, body: dict[str, str], url: str) -> str:
        started = time.monotonic()
        try:
            response = post_order(self.session, url, body, headers=self.headers, timeout=ANSWER_TIMEOUT_S,
                                  tally=self.tally)
        except requests.RequestException as exc:
            self.tally.record_unexpected(f"POST {body['client_order_id']}: {type(exc).__name__}")
            return "unexpected"
        self.tally.record_latency(time.monotonic() - started)
        return self.take_answer(body, response)

    def take_answer(self, body: dict[str, str], response: requests.Response) -> str:
        kind, answer = classify(response)
        client_order_id = body["client_order_id"]
        if kind == "unexpected":
            self.tally.record_unexpected(f"POST {client_order_id}: HTTP {response.status_code} {response.text[:200]}")
            return kind
        if kind == "denied":
            codes = sorted({v["code"] for v in answer.get("violations", [])})
            self.tally.record(kind, client_order_id, status="denied", codes=codes)
        elif kind == "created":
            self.tally.record(kind, client_order_id, status=answer.get("status"))
            self.remember(body, answer)
        else:
            self.tally.record(kind, client_order_id)
        return kind

    def remember(self, body: dict[str, str], answer: dict[str, Any]) -> None:
        self.created.append(body)
        if body["type"] == "limit" and answer.get("status") in {"submitted", "unknown"}:
            self.resting.append(answer["id"])
        if (body["type"] == "market" and Decimal(body["qty"]) >= 2 and answer.get("status") == "submitted"
                and answer.get("broker_order_id") and self.rng.random() < 0.3):
            # Filled in two parts at the fake: a partial fill now, the rest at the next step.
            self.partial_fills.put(answer["broker_order_id"])

    def submit_twice_at_once(self, body: dict[str, str]) -> None:
        """The same request from two threads at the same instant, one to each web process."""
        barrier = threading.Barrier(2)
        kinds: list[str] = []

        def twin() -> None:
            with requests.Session() as session:
                barrier.wait(timeout=10)
                try:
                    response = post_order(session, self.web_urls[1], body, headers=self.headers,
                                          timeout=ANSWER_TIMEOUT_S, tally=self.tally)
                except requests.RequestException as exc:
                    self.tally.record_unexpected(f"twin POST {body['client_order_id']}: {type(exc).__name__}")
                    kinds.append("unexpected")
                    return
                kinds.append(self.take_answer(body, response))

        other = threading.Thread(target=twin, daemon=True)
        other.start()
        barrier.wait(timeout=10)
        kinds.append(self.submit(body, self.web_urls[0]))
        other.join(timeout=ANSWER_TIMEOUT_S + 5)
        self.tally.record("concurrent_duplicate")
        self.tally.record_pair(body["client_order_id"], sorted(kinds))

    def submit_impatiently_then_retry(self, body: dict[str, str]) -> None:
        """Give up after a few milliseconds (the server carries on), then retry the same request."""
        url = self.web_urls[self.rng.randrange(len(self.web_urls))]
        try:
            response = post_order(self.session, url, body, headers=self.headers,
                                  timeout=(2.0, IMPATIENT_TIMEOUT_S), tally=self.tally)
        except requests.Timeout:
            self.tally.record("client_timeout")
        except requests.RequestException as exc:
            self.tally.record_unexpected(f"POST {body['client_order_id']}: {type(exc).__name__}")
            return
        else:
            self.take_answer(body, response)
            return
        self.tally.record("retry")
        self.submit(body, self.web_urls[0] if url != self.web_urls[0] else self.web_urls[-1])

    def reuse_id_with_another_payload(self) -> None:
        original = self.rng.choice(self.created)
        changed = {**original, "qty": str(Decimal(original["qty"]) + 1)}
        url = self.web_urls[self.rng.randrange(len(self.web_urls))]
        try:
            response = post_order(self.session, url, changed, headers=self.headers, timeout=ANSWER_TIMEOUT_S,
                                  tally=self.tally)
        except requests.RequestException as exc:
            self.tally.record_unexpected(f"conflicting POST: {type(exc).__name__}")
            return
        kind, _ = classify(response)
        if kind != "conflict":
            self.tally.record_unexpected(f"reused id {original['client_order_id']} with another payload: "
                                         f"HTTP {response.status_code}, expected 409")
            return
        self.tally.record("conflict")

    def cancel_a_resting_order(self) -> None:
        order_id = self.resting.pop(self.rng.randrange(len(self.resting)))
        url = self.web_urls[self.rng.randrange(len(self.web_urls))]
        try:
            response = self.session.delete(f"{url}/v1/orders/{order_id}", headers=self.headers,
                                           timeout=ANSWER_TIMEOUT_S)
        except requests.RequestException as exc:
            self.tally.record_unexpected(f"DELETE {order_id}: {type(exc).__name__}")
            return
        if response.status_code == 202:
            self.tally.record("cancel_accepted")
        elif response.status_code == 409:
            self.tally.record("cancel_refused_terminal")
        else:
            self.tally.record_unexpected(f"DELETE {order_id}: HTTP {response.status_code} {response.text[:200]}")


class MarketStepper(threading.Thread):
    """The fake's clock: fills what the prices cross every tick, some market orders in two parts."""

    def __init__(self, *, fake_url: str, partial_fills: queue.Queue[str], interval_s: float = 0.25) -> None:
        super().__init__(name="market-stepper", daemon=True)
        self.fake = FakeAlpacaControl(fake_url)  # its own HTTP session: sessions are not shared across threads
        self.partial_fills = partial_fills
        self.interval_s = interval_s
        self.stop = threading.Event()
        self.steps = 0
        self.orders_stepped = 0
        self.partial_fills_done = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.tick()
                self.stop.wait(self.interval_s)
        except BaseException as exc:
            self.error = exc

    def tick(self) -> None:
        while True:
            try:
                broker_order_id = self.partial_fills.get_nowait()
            except queue.Empty:
                break
            try:
                self.fake.fill(broker_order_id, qty="1")
                self.partial_fills_done += 1
            except RuntimeError:
                pass  # already filled or cancelled at the fake: nothing to split
        self.orders_stepped += self.fake.step()
        self.steps += 1
