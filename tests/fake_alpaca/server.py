"""A fake Alpaca Trading API (and latest-trades market data) over real HTTP on loopback.

It speaks Alpaca's paths, JSON shapes, status codes and error bodies as
published in Alpaca's OpenAPI description, so the real alpaca-py client can be
pointed at it with ``url_override``. Behind it is a :class:`Venue` with an order
lifecycle; in front of it, a :class:`FaultPlan` that can lose answers, fail,
rate-limit, stall or drop connections, per method and path.

Two ways to use it:

* in-process: ``with FakeAlpacaServer() as fake: ...`` (or the ``fake_alpaca``
  fixture in ``tests.fake_alpaca.fixtures``), then ``fake.set_fault(...)``,
  ``fake.set_price(...)``, ``fake.orders``, ``fake.requests``;
* as a process: ``python -m tests.fake_alpaca --port N`` with the same
  controls over HTTP under ``/_fake/`` (see :mod:`tests.fake_alpaca.control`).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fake_alpaca.faults import FaultPlan, FaultRule
from tests.fake_alpaca.venue import (
    CODE_FORBIDDEN,
    CODE_INTERNAL,
    CODE_INVALID_REQUEST,
    CODE_NOT_FOUND,
    CODE_RATE_LIMITED,
    CODE_UNAUTHORIZED,
    DEFAULT_CASH,
    AlpacaError,
    Order,
    Venue,
    VenueError,
    format_timestamp_ns,
    parse_timestamp_ns,
)

DEFAULT_API_KEY = "PKFAKEALPACAKEY000001"
DEFAULT_SECRET_KEY = "fake-alpaca-secret-0000000000000000000001"
RATE_LIMIT_PER_MINUTE = 200

GATEWAY_TIMEOUT_PAGE = (
    "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    "<center><h1>504 Gateway Time-out</h1></center>\r\n</body>\r\n</html>\r\n"
)

Json = dict[str, Any] | list[Any]


@dataclass
class RecordedRequest:
    """One request as the fake received it (control calls under /_fake/ are not recorded)."""

    method: str
    path: str
    query: dict[str, str]
    client_order_id: str | None
    at: float  # time.time() on arrival
    fault: str | None = None
    status: int | None = None  # what was answered; None when no answer was sent


@dataclass
class _Answer:
    status: int
    body: Json | str | None = None
    headers: dict[str, str] | None = None


class _Connection:
    """What a route handler may do with the connection it is answering."""

    def __init__(self, handler: _Handler) -> None:
        self._handler = handler

    def send(self, answer: _Answer) -> None:
        if isinstance(answer.body, str):
            payload, content_type = answer.body.encode(), "text/html"
        elif answer.body is None:
            payload, content_type = b"", "application/json"
        else:
            payload, content_type = json.dumps(answer.body).encode(), "application/json; charset=utf-8"
        handler = self._handler
        try:
            handler.send_response(answer.status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(payload)))
            for name, value in (answer.headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            # The client gave up first (a "slow" answer after its timeout): nothing to do.
            handler.close_connection = True

    def abort(self) -> None:
        """Close the socket without a byte of answer: the client sees the connection drop."""
        handler = self._handler
        handler.close_connection = True
        with contextlib.suppress(OSError):  # the client may have gone already
            handler.connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real API behind a load balancer
    # Headers and body leave in two writes; with Nagle on, the client's delayed
    # ACK would add ~40 ms to every keep-alive answer.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):  # flushing to a client that hung up
            super().finish()
        self.server.untrack(self.connection)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.server.fake.handle(_Connection(self), method, parts.path, query, dict(self.headers.items()), body)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.fake.verbose:
            super().log_message(format, *args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], fake: FakeAlpacaServer) -> None:
        self.fake = fake
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket) -> None:
        with self._open_lock:
            self._open.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(connection)

    def close_open_connections(self) -> None:
        """Idle keep-alive connections would otherwise hold their threads past stop()."""
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class FakeAlpacaServer:
    """The fake Alpaca: HTTP front, venue behind, faults in between."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        api_key: str | None = DEFAULT_API_KEY,
        secret_key: str | None = DEFAULT_SECRET_KEY,
        fill_mode: str = "immediate",
        cancel_mode: str = "immediate",
        cash: Decimal = DEFAULT_CASH,
        verbose: bool = False,
    ) -> None:
        # api_key/secret_key None: any non-empty pair is accepted (standalone default).
        self.api_key, self.secret_key = api_key, secret_key
        self.verbose = verbose
        self.seed = seed
        self._default_fill_mode, self._default_cancel_mode, self._default_cash = fill_mode, cancel_mode, cash
        self.venue = Venue(cash=cash, fill_mode=fill_mode, cancel_mode=cancel_mode)
        self.faults = FaultPlan(seed)
        self._log_lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._submissions: Counter[str] = Counter()
        self._stopping = threading.Event()
        self._httpd = _HTTPServer((host, port), self)
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What ALPACA_BASE_URL (and ALPACA_DATA_URL) should be: no /v2, as alpaca-py wants."""
        host, port = self._httpd.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    def start(self) -> FakeAlpacaServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-alpaca", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self._stopping.set()  # wakes "slow" answers that are still sleeping
        self._httpd.shutdown()
        self._httpd.close_open_connections()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeAlpacaServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- controls (the same calls are served under /_fake/) ------------------

    def set_fault(
        self,
        kind: str,
        *,
        method: str = "*",
        path: str = "*",
        count: int | None = 1,
        probability: float | None = None,
        seconds: float = 5.0,
        apply: bool | None = None,
        reset_in_s: int = 60,
        reset_at: int | None = None,
    ) -> FaultRule:
        """Fail the next ``count`` requests matching method and path (or with ``probability``)."""
        rule = FaultRule(
            kind=kind,
            method=method,
            path=path,
            count=count,
            probability=probability,
            seconds=seconds,
            apply=apply,
            reset_in_s=reset_in_s,
            reset_at=reset_at,
        )
        return self.faults.add(rule)

    def clear_faults(self) -> None:
        self.faults.clear()

    @property
    def faults_injected(self) -> dict[str, int]:
        return dict(self.faults.injected)

    def faults_fired(self, rule_ids: list[int]) -> int:
        """How many requests the rules with these ids have caught so far (cheap to poll)."""
        return sum(rule.fired for rule in self.faults.rules if rule.id in rule_ids)

    def set_price(self, symbol: str, price: Decimal | str | float, *, at_ns: int | None = None) -> None:
        self.venue.set_price(symbol, Decimal(str(price)), at_ns=at_ns)

    def add_asset(self, symbol: str, *, tradable: bool = True, name: str = "") -> None:
        self.venue.add_asset(symbol, tradable=tradable, name=name)

    def configure(self, **settings: Any) -> None:
        """fill_mode, cancel_mode, cash, last_equity, market_open, frozen_ns (see Venue.configure)."""
        for money in ("cash", "last_equity"):
            if settings.get(money) is not None:
                settings[money] = Decimal(str(settings[money]))
        self.venue.configure(**settings)

    def place_order(self, **fields: Any) -> dict[str, Any]:
        """Create an order the way POST /v2/orders would, without HTTP (seeding thousands is fast)."""
        body = {"type": "market", "time_in_force": "day", "side": "buy", **fields}
        for name in ("qty", "limit_price", "stop_price"):
            if body.get(name) is not None:
                body[name] = str(body[name])
        return self.venue.submit(body).to_json()

    def fill(
        self,
        order_id: str | None = None,
        *,
        client_order_id: str | None = None,
        qty: Decimal | str | None = None,
        price: Decimal | str | None = None,
    ) -> dict[str, Any]:
        """Fill part (``qty``) or all of an order, at ``price`` or the current price."""
        order = self._find(order_id, client_order_id)
        filled = self.venue.fill(
            order,
            qty=None if qty is None else Decimal(str(qty)),
            price=None if price is None else Decimal(str(price)),
        )
        return filled.to_json()

    def expire(self, order_id: str | None = None, *, client_order_id: str | None = None) -> dict[str, Any]:
        return self.venue.expire(self._find(order_id, client_order_id)).to_json()

    def step(self) -> int:
        """Manual fill mode's tick: fill what the prices cross, finish pending cancels."""
        return self.venue.step()

    def reset(self, *, seed: int | None = None) -> None:
        """Back to a fresh account: no orders, positions, faults or recorded requests."""
        self.venue.configure(fill_mode=self._default_fill_mode, cancel_mode=self._default_cancel_mode)
        self.venue.reset(cash=self._default_cash)
        self.faults.reset(self.seed if seed is None else seed)
        with self._log_lock:
            self._requests.clear()
            self._submissions.clear()

    # -- introspection --------------------------------------------------------

    @property
    def orders(self) -> list[dict[str, Any]]:
        """Every order, oldest first, as Alpaca would answer it."""
        with self.venue.lock:
            ordered = sorted(self.venue.orders.values(), key=lambda o: (o.submitted_ns, o.seq))
            return [order.to_json() for order in ordered]

    def order(self, order_id: str | None = None, *, client_order_id: str | None = None) -> dict[str, Any] | None:
        try:
            return self._find(order_id, client_order_id).to_json()
        except AlpacaError:
            return None

    @property
    def positions(self) -> list[dict[str, Any]]:
        with self.venue.lock:
            return [self.venue.position_json(p) for p in sorted(self.venue.positions.values(), key=lambda p: p.symbol)]

    @property
    def account(self) -> dict[str, Any]:
        return self.venue.account_json()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._log_lock:
            return list(self._requests)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    @property
    def submissions(self) -> dict[str, int]:
        """client_order_id -> how many POST /v2/orders carried it (faulted and refused ones too)."""
        with self._log_lock:
            return dict(self._submissions)

    def state(self) -> dict[str, Any]:
        with self.venue.lock:
            prices = {
                s: {"price": str(p.value), "t": format_timestamp_ns(p.at_ns)} for s, p in self.venue.prices.items()
            }
            config = {
                "fill_mode": self.venue.fill_mode,
                "cancel_mode": self.venue.cancel_mode,
                "market_open": self.venue.market_open,
                "frozen_ns": self.venue.frozen_ns,
            }
        return {
            "orders": self.orders,
            "positions": self.positions,
            "account": self.account,
            "prices": prices,
            "config": config,
            "faults": [rule.to_json() for rule in self.faults.rules],
            "faults_injected": self.faults_injected,
            "submissions": self.submissions,
            "request_count": len(self.requests),
        }

    # -- serving --------------------------------------------------------------

    def handle(
        self,
        connection: _Connection,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        if path.startswith("/_fake/"):
            connection.send(self._control(method, path, query, body))
            return
        record = self._record(method, path, query, body)
        rule = self.faults.pick(method, path)
        record.fault = rule.kind if rule else None

        if rule and rule.kind == "drop_connection":
            connection.abort()
            return
        if rule and rule.kind == "stall":
            self._stopping.wait(rule.seconds)
            connection.abort()
            return
        if rule and rule.kind == "slow_accept":
            if self._stopping.wait(rule.seconds):
                return  # shutting down: the gateway never got round to it
            self._answer(connection, record, self._route(method, path, query, headers, body))
            return
        if rule and not rule.apply:  # http_429, or http_500/504 that fail before the venue acts
            self._answer(connection, record, self._fault_answer(rule))
            return

        answer = self._route(method, path, query, headers, body)

        if rule and rule.kind == "lose_response":
            connection.abort()
            return
        if rule and rule.kind == "slow":
            self._stopping.wait(rule.seconds)
        elif rule:  # http_500 / http_504 after the venue acted
            answer = self._fault_answer(rule)
        self._answer(connection, record, answer)

    def _answer(self, connection: _Connection, record: RecordedRequest, answer: _Answer) -> None:
        record.status = answer.status
        connection.send(answer)

    def _record(self, method: str, path: str, query: dict[str, str], body: bytes) -> RecordedRequest:
        client_order_id: str | None = None
        if method == "POST" and path == "/v2/orders":
            try:
                client_order_id = json.loads(body or b"{}").get("client_order_id")
            except (ValueError, AttributeError):
                client_order_id = None
        elif path == "/v2/orders:by_client_order_id":
            client_order_id = query.get("client_order_id")
        record = RecordedRequest(method, path, query, client_order_id, time.time())
        with self._log_lock:
            self._requests.append(record)
            if method == "POST" and path == "/v2/orders" and client_order_id:
                self._submissions[client_order_id] += 1
        return record

    def _fault_answer(self, rule: FaultRule) -> _Answer:
        if rule.kind == "http_429":
            reset_at = rule.reset_at if rule.reset_at is not None else int(time.time()) + rule.reset_in_s
            return _Answer(
                429,
                {"code": CODE_RATE_LIMITED, "message": "too many requests."},
                {
                    "X-Ratelimit-Limit": str(RATE_LIMIT_PER_MINUTE),
                    "X-Ratelimit-Remaining": "0",
                    "X-Ratelimit-Reset": str(reset_at),
                },
            )
        if rule.kind == "http_504":
            return _Answer(504, GATEWAY_TIMEOUT_PAGE)
        return _Answer(500, {"code": CODE_INTERNAL, "message": "internal server error occurred"})

    def _authorised(self, headers: dict[str, str]) -> _Answer | None:
        lowered = {name.lower(): value for name, value in headers.items()}
        key, secret = lowered.get("apca-api-key-id"), lowered.get("apca-api-secret-key")
        if not key or not secret:
            return _Answer(401, {"code": CODE_UNAUTHORIZED, "message": "request is not authorized"})
        expected = (self.api_key, self.secret_key)
        if expected != (None, None) and (key, secret) != expected:
            return _Answer(403, {"code": CODE_FORBIDDEN, "message": "forbidden."})
        return None

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> _Answer:
        refusal = self._authorised(headers)
        if refusal is not None:
            return refusal
        try:
            return self._serve(method, path, query, body)
        except AlpacaError as error:
            return _Answer(error.status, error.body)

    def _serve(self, method: str, path: str, query: dict[str, str], body: bytes) -> _Answer:
        venue = self.venue
        segments = path.strip("/").split("/")
        match (method, segments):
            case ("POST", ["v2", "orders"]):
                return _Answer(200, venue.submit(_json_object(body)).to_json())
            case ("GET", ["v2", "orders"]):
                filters = _list_filters(query)
                return _Answer(200, [order.to_json(nested=filters["nested"]) for order in venue.list_orders(**filters)])
            case ("DELETE", ["v2", "orders"]):
                return _Answer(207, [{"id": order_id, "status": status} for order_id, status in venue.cancel_all()])
            case ("GET", ["v2", "orders:by_client_order_id"]):
                return _Answer(200, venue.get_by_client_id(query.get("client_order_id", "")).to_json())
            case ("GET", ["v2", "orders", order_id]):
                return _Answer(200, venue.get(order_id).to_json(nested=_query_bool(query, "nested")))
            case ("PATCH", ["v2", "orders", order_id]):
                return _Answer(200, venue.replace(order_id, _json_object(body)).to_json())
            case ("DELETE", ["v2", "orders", order_id]):
                venue.cancel(order_id)
                return _Answer(204)
            case ("GET", ["v2", "positions"]):
                with venue.lock:
                    positions = sorted(venue.positions.values(), key=lambda p: p.symbol)
                    return _Answer(200, [venue.position_json(p) for p in positions])
            case ("GET", ["v2", "positions", symbol]):
                position = venue.positions.get(symbol)
                if position is None:
                    raise AlpacaError(404, CODE_NOT_FOUND, "position does not exist")
                return _Answer(200, venue.position_json(position))
            case ("DELETE", ["v2", "positions"]):
                cancel_orders = _query_bool(query, "cancel_orders")
                return _Answer(207, venue.close_all(cancel_orders=cancel_orders))
            case ("GET", ["v2", "account"]):
                return _Answer(200, venue.account_json())
            case ("GET", ["v2", "clock"]):
                return _Answer(200, venue.clock_json())
            case ("GET", ["v2", "assets", symbol]):
                asset = venue.assets.get(symbol)
                if asset is None:
                    raise AlpacaError(404, CODE_NOT_FOUND, "asset not found")
                return _Answer(200, asset.to_json())
            case ("GET", ["v2", "stocks", "trades", "latest"]):
                return _Answer(200, self._latest_trades(query))
        raise AlpacaError(404, CODE_NOT_FOUND, "endpoint not found")

    def _latest_trades(self, query: dict[str, str]) -> dict[str, Any]:
        """Market data v2 latest trades: prices are JSON numbers there, unlike the trading API."""
        symbols = [s for s in query.get("symbols", "").split(",") if s]
        if not symbols:
            raise AlpacaError(400, CODE_INVALID_REQUEST, "missing symbols")
        trades: dict[str, Any] = {}
        with self.venue.lock:
            for index, symbol in enumerate(symbols):
                price = self.venue.prices.get(symbol)
                if price is None:
                    continue
                trades[symbol] = {
                    "c": ["@"],
                    "i": 52983525029461 + index,
                    "p": float(price.value),
                    "s": 100,
                    "t": format_timestamp_ns(price.at_ns),
                    "x": "V",
                    "z": "C",
                }
        return {"trades": trades}

    def _find(self, order_id: str | None, client_order_id: str | None) -> Order:
        return self.venue.find(order_id=order_id, client_order_id=client_order_id)

    # -- the control API ------------------------------------------------------

    def _control(self, method: str, path: str, query: dict[str, str], body: bytes) -> _Answer:
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return _Answer(400, {"error": "body must be JSON"})
        route = _CONTROL_ROUTES.get((method, path))
        if route is None:
            return _Answer(404, {"error": f"no control {method} {path}"})
        try:
            return route(self, payload, query)
        except (VenueError, ValueError, TypeError, KeyError) as error:
            return _Answer(400, {"error": str(error)})
        except AlpacaError as error:
            return _Answer(error.status, {"error": error.body["message"]})


# Alpaca's API is written in Go; its query booleans parse like strconv.ParseBool,
# which is why alpaca-py's "cancel_orders=True" (a stringified Python bool) works.
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def _query_bool(query: dict[str, str], name: str) -> bool:
    raw = query.get(name)
    if raw is None or raw in _GO_FALSE:
        return False
    if raw in _GO_TRUE:
        return True
    raise AlpacaError(422, CODE_INVALID_REQUEST, f"invalid {name}")


def _json_object(body: bytes) -> dict:
    """A request body that must be a JSON object, as Alpaca reads one: anything else is its 400."""
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        raise AlpacaError(400, CODE_INVALID_REQUEST, "request body format is invalid") from None
    if not isinstance(payload, dict):
        raise AlpacaError(400, CODE_INVALID_REQUEST, "request body format is invalid")
    return payload


def _list_filters(query: dict[str, str]) -> dict[str, Any]:
    """GET /v2/orders query -> Venue.list arguments, refused like Alpaca refuses bad ones."""
    status = query.get("status", "open")
    direction = query.get("direction", "desc")
    if status not in ("open", "closed", "all"):
        raise AlpacaError(422, CODE_INVALID_REQUEST, "invalid status")
    if direction not in ("asc", "desc"):
        raise AlpacaError(422, CODE_INVALID_REQUEST, "invalid direction")
    try:
        limit = int(query.get("limit", "50"))
    except ValueError:
        raise AlpacaError(422, CODE_INVALID_REQUEST, "invalid limit") from None
    if not 1 <= limit <= 500:
        # Strict on purpose: a client asking for more than 500 must learn it here,
        # not mistake a full page of 500 for a short last page.
        raise AlpacaError(422, CODE_INVALID_REQUEST, "limit must be between 1 and 500")
    bounds: dict[str, int | None] = {}
    for name in ("after", "until"):
        raw = query.get(name)
        try:
            bounds[name] = parse_timestamp_ns(raw) if raw else None
        except ValueError:
            raise AlpacaError(422, CODE_INVALID_REQUEST, f"invalid {name}") from None
    symbols = [s for s in query.get("symbols", "").split(",") if s] or None
    return {
        "status": status,
        "limit": limit,
        "after_ns": bounds["after"],
        "until_ns": bounds["until"],
        "direction": direction,
        "symbols": symbols,
        "side": query.get("side") or None,
        "nested": _query_bool(query, "nested"),
    }


_ControlRoute = Callable[[FakeAlpacaServer, Any, dict[str, str]], _Answer]


def _control_faults_add(fake: FakeAlpacaServer, payload: dict[str, Any], query: dict[str, str]) -> _Answer:
    kind = payload.pop("kind")
    return _Answer(201, fake.set_fault(kind, **payload).to_json())


def _control_faults_clear(fake: FakeAlpacaServer, payload: dict[str, Any], query: dict[str, str]) -> _Answer:
    fake.clear_faults()
    return _Answer(204)


def _control_assets(fake: FakeAlpacaServer, payload: dict[str, Any], query: dict[str, str]) -> _Answer:
    fake.add_asset(**payload)
    return _Answer(200, {})


def _control_reset(fake: FakeAlpacaServer, payload: dict[str, Any], query: dict[str, str]) -> _Answer:
    fake.reset(**payload)
    return _Answer(200, {})


def _control_prices(fake: FakeAlpacaServer, payload: dict[str, Any], query: dict[str, str]) -> _Answer:
    at = payload.get("at")
    at_ns = parse_timestamp_ns(at) if at else None
    for symbol, price in payload["prices"].items():
        fake.set_price(symbol, price, at_ns=at_ns)
    return _Answer(200, {"prices": payload["prices"]})


def _control_config(fake: FakeAlpacaServer, payload: dict[str, Any], query: dict[str, str]) -> _Answer:
    settings = dict(payload)
    if "frozen_time" in settings:
        frozen = settings.pop("frozen_time")
        settings["frozen_ns"] = parse_timestamp_ns(frozen) if frozen else None
    fake.configure(**settings)
    return _Answer(200, fake.state()["config"])


_CONTROL_ROUTES: dict[tuple[str, str], _ControlRoute] = {
    ("GET", "/_fake/health"): lambda fake, payload, query: _Answer(200, {"ok": True}),
    ("GET", "/_fake/state"): lambda fake, payload, query: _Answer(200, fake.state()),
    ("GET", "/_fake/orders"): lambda fake, payload, query: _Answer(200, fake.orders),
    ("GET", "/_fake/requests"): lambda fake, payload, query: _Answer(200, [asdict(r) for r in fake.requests]),
    ("GET", "/_fake/faults"): lambda fake, payload, query: _Answer(200, [r.to_json() for r in fake.faults.rules]),
    ("GET", "/_fake/order"): lambda fake, payload, query: _Answer(
        200, fake.order(query.get("id"), client_order_id=query.get("client_order_id"))
    ),
    ("POST", "/_fake/faults"): _control_faults_add,
    ("DELETE", "/_fake/faults"): _control_faults_clear,
    ("POST", "/_fake/prices"): _control_prices,
    ("POST", "/_fake/assets"): _control_assets,
    ("POST", "/_fake/config"): _control_config,
    ("POST", "/_fake/orders"): lambda fake, payload, query: _Answer(201, fake.place_order(**payload)),
    ("POST", "/_fake/fill"): lambda fake, payload, query: _Answer(200, fake.fill(**payload)),
    ("POST", "/_fake/expire"): lambda fake, payload, query: _Answer(200, fake.expire(**payload)),
    ("POST", "/_fake/step"): lambda fake, payload, query: _Answer(200, {"changed": fake.step()}),
    ("POST", "/_fake/reset"): _control_reset,
}
