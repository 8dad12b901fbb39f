"""The fake Alpaca answers in Alpaca's published shapes (OpenAPI 3.0, validated with jsonschema).

OpenAPI 3.0 schema objects are a dialect of JSON Schema draft 4 (booleans for
exclusiveMinimum, siblings of ``$ref`` ignored) plus ``nullable``. So the whole
document is converted once: every ``nullable: true`` becomes
``anyOf: [<the schema>, {"type": "null"}]``, and the document is registered as
a draft 4 resource so ``$ref``s resolve inside it. Nothing is relaxed: no
``additionalProperties`` is added or removed, ``required`` and ``enum`` stay,
and ``date-time`` and ``uuid`` formats are checked (jsonschema only checks
them when optional packages are installed, so this file brings its own).

Besides the schema, every answer must parse into alpaca-py's own models: the
adapter reads raw JSON, but the fake must not drift from what the SDK accepts.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from alpaca.data.models.trades import Trade
from alpaca.trading.models import Asset, Clock, ClosePositionResponse, Order, Position, TradeAccount
from alpaca.trading.requests import CancelOrderResponse  # where alpaca-py 0.44.0 keeps it
from referencing import Registry
from referencing.jsonschema import DRAFT4

from tests.fake_alpaca import DEFAULT_API_KEY, DEFAULT_SECRET_KEY, FakeAlpacaServer

pytest_plugins = ["tests.fake_alpaca.fixtures"]

# Alpaca's OpenAPI 3.0 description of the Trading API v2.0.1, vendored from the
# public repository alpacahq/cli (api/specs/trading-api.json, commit 013def7) so
# this check runs wherever the repository does.
OPENAPI_PATH = Path(__file__).resolve().parents[1] / "fake_alpaca" / "alpaca-trading-api.openapi.json"
SPEC_URI = "urn:alpaca:trading-api"

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@cache
def _spec() -> dict[str, Any]:
    return json.loads(OPENAPI_PATH.read_text())


def openapi_to_draft4(node: Any) -> Any:
    """OpenAPI 3.0 schema -> draft 4 JSON Schema: ``nullable`` is the only keyword to translate."""
    if isinstance(node, list):
        return [openapi_to_draft4(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: openapi_to_draft4(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("date-time", raises=ValueError)
    def is_datetime(value: object) -> bool:
        return not isinstance(value, str) or bool(_RFC3339.match(value))

    @checker.checks("uuid", raises=ValueError)
    def is_uuid(value: object) -> bool:
        if isinstance(value, str):
            uuid.UUID(value)
        return True

    return checker


@cache
def _registry() -> Registry:
    document = openapi_to_draft4(_spec())
    return Registry().with_resource(SPEC_URI, DRAFT4.create_resource(document))


def validator_for(pointer: str) -> jsonschema.Draft4Validator:
    """A validator for one schema of the document, e.g. ``/components/schemas/Order``."""
    return jsonschema.Draft4Validator(
        {"$ref": f"{SPEC_URI}#{pointer}"}, registry=_registry(), format_checker=_format_checker()
    )


def list_of(pointer: str) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(
        {"type": "array", "items": {"$ref": f"{SPEC_URI}#{pointer}"}},
        registry=_registry(),
        format_checker=_format_checker(),
    )


def assert_valid(validator: jsonschema.Draft4Validator, instance: Any) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


ORDER = "/components/schemas/Order"
ACCOUNT = "/components/schemas/Account"
POSITION = "/components/schemas/Position"
ASSET = "/components/schemas/Assets"
CLOCK = "/components/schemas/legacy_clock"
ERROR = "/components/schemas/Error"
CANCELED = "/components/schemas/CanceledOrderResponse"
CLOSED = "/components/schemas/PositionClosedReponse"


class Alpaca:
    """Raw HTTP against the fake, exactly as any client would see it."""

    def __init__(self, fake: FakeAlpacaServer) -> None:
        self.fake = fake
        self.session = requests.Session()
        self.session.headers.update({"APCA-API-KEY-ID": DEFAULT_API_KEY, "APCA-API-SECRET-KEY": DEFAULT_SECRET_KEY})

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.fake.base_url}{path}", timeout=5, **kwargs)

    def order(self, **fields: Any) -> dict[str, Any]:
        body = {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day", **fields}
        response = self("POST", "/v2/orders", json=body)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def alpaca(fake_alpaca: FakeAlpacaServer) -> Iterator[Alpaca]:
    client = Alpaca(fake_alpaca)
    yield client
    client.session.close()


# --- the check itself can fail ----------------------------------------------------------


def test_the_specs_own_order_examples_pass_the_converted_schema() -> None:
    examples = _spec()["components"]["examples"]
    for name in ("EquityOrderResponse", "CryptoOrderResponse"):
        assert_valid(validator_for(ORDER), examples[name]["value"])


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"qty": 2}, "qty must be a string"),
        ({"status": "done"}, "status outside OrderStatus"),
        ({"submitted_at": "2023-12-12 22:31"}, "not a date-time"),
        ({"asset_id": "not-a-uuid"}, "not a uuid"),
        ({"symbol": None}, "symbol is not nullable"),
        ({"type": None}, "type is required and not nullable"),
    ],
)
def test_a_broken_order_fails_the_converted_schema(change: dict[str, Any], why: str) -> None:
    example = _spec()["components"]["examples"]["EquityOrderResponse"]["value"]
    broken = {**copy.deepcopy(example), **change}

    assert list(validator_for(ORDER).iter_errors(broken)), why


def test_a_missing_required_error_field_fails_the_error_schema() -> None:
    assert list(validator_for(ERROR).iter_errors({"message": "no code"}))


# --- orders ----------------------------------------------------------------------------------


def test_submitted_orders_in_every_state_match_the_order_schema(alpaca: Alpaca, fake_alpaca: FakeAlpacaServer) -> None:
    filled = alpaca.order()
    resting = alpaca.order(type="limit", limit_price="100.5", time_in_force="gtc", qty="3")
    partial = fake_alpaca.fill(resting["id"], qty="1", price="100")
    other = alpaca.order(type="limit", limit_price="1", client_order_id="c-1")
    assert alpaca("DELETE", f"/v2/orders/{other['id']}").status_code == 204
    canceled = alpaca("GET", f"/v2/orders/{other['id']}").json()

    for order in (filled, resting, partial, canceled):
        assert_valid(validator_for(ORDER), order)
        Order(**order)
    assert (filled["status"], resting["status"], partial["status"], canceled["status"]) == (
        "filled",
        "new",
        "partially_filled",
        "canceled",
    )


def test_order_list_and_lookups_match_the_order_schema(alpaca: Alpaca) -> None:
    alpaca.order(client_order_id="look-1")
    alpaca.order(type="limit", limit_price="1")

    listed = alpaca("GET", "/v2/orders", params={"status": "all", "limit": 500, "direction": "asc"})
    by_client = alpaca("GET", "/v2/orders:by_client_order_id", params={"client_order_id": "look-1"})

    assert listed.status_code == by_client.status_code == 200
    assert_valid(list_of(ORDER), listed.json())
    assert len(listed.json()) == 2
    assert_valid(validator_for(ORDER), by_client.json())
    for order in listed.json():
        Order(**order)


def _as_published(order: Any) -> Any:
    """The order with "held" read as "new" for the schema check: the published OrderStatus enum omits
    "held", the status Alpaca gives an oto/bracket leg until its entry fills (Alpaca's order-lifecycle
    documentation, and alpaca-py's OrderStatus.HELD, which the Order(**...) parse below checks)."""
    if isinstance(order, list):
        return [_as_published(item) for item in order]
    copy_ = dict(order, legs=_as_published(order["legs"]) if order.get("legs") else order.get("legs"))
    if copy_["status"] == "held":
        copy_["status"] = "new"
    return copy_


def test_stops_brackets_nested_listings_and_replaces_match_the_order_schema(
    alpaca: Alpaca, fake_alpaca: FakeAlpacaServer
) -> None:
    stop = alpaca.order(type="stop", stop_price="250", client_order_id="stop-1")
    stop_limit = alpaca.order(type="stop_limit", stop_price="250", limit_price="251")
    bracket = alpaca.order(type="limit", limit_price="180", order_class="bracket",
                           stop_loss={"stop_price": "170"}, take_profit={"limit_price": "200"})
    oto = alpaca.order(type="limit", limit_price="180", order_class="oto", stop_loss={"stop_price": "170"})
    replaced = alpaca("PATCH", f"/v2/orders/{stop['id']}", json={"stop_price": "245", "client_order_id": "stop-2"})
    nested = alpaca("GET", "/v2/orders", params={"status": "open", "nested": "true", "direction": "asc"})
    flat = alpaca("GET", "/v2/orders", params={"status": "open", "nested": "false"})
    by_id = alpaca("GET", f"/v2/orders/{bracket['id']}", params={"nested": "true"})

    assert replaced.status_code == 200, replaced.text
    for order in (stop, stop_limit, bracket, oto, replaced.json(), by_id.json()):
        assert_valid(validator_for(ORDER), _as_published(order))
        Order(**order)
    assert_valid(list_of(ORDER), _as_published(nested.json()))
    assert sorted((o["order_class"], len(o["legs"] or [])) for o in nested.json()) == [
        ("", 0), ("", 0), ("bracket", 2), ("oto", 1)
    ]  # the replaced stop is closed; its replacement is open
    assert len(flat.json()) == 7  # legs listed on their own: 2 stops, 2 entries, 3 legs
    assert [leg["status"] for leg in by_id.json()["legs"]] == ["held", "held"]
    assert (replaced.json()["replaces"], fake_alpaca.order(stop["id"])["status"]) == (stop["id"], "replaced")


def test_cancel_all_answers_207_with_canceled_order_responses(alpaca: Alpaca) -> None:
    for _ in range(2):
        alpaca.order(type="limit", limit_price="1")

    response = alpaca("DELETE", "/v2/orders")

    assert response.status_code == 207
    assert_valid(list_of(CANCELED), response.json())
    assert [item["status"] for item in response.json()] == [200, 200]
    for item in response.json():
        CancelOrderResponse(**item)


# --- account, positions, clock, assets -----------------------------------------------------------


def test_account_matches_the_account_schema_with_money_as_strings(alpaca: Alpaca) -> None:
    account = alpaca("GET", "/v2/account").json()

    assert_valid(validator_for(ACCOUNT), account)
    TradeAccount(**account)
    for money in ("equity", "last_equity", "cash", "buying_power"):
        assert isinstance(account[money], str)


def test_long_and_short_positions_match_the_position_schema(alpaca: Alpaca) -> None:
    alpaca.order(qty="2")
    alpaca.order(symbol="MSFT", side="sell", qty="1")

    positions = alpaca("GET", "/v2/positions").json()

    assert_valid(list_of(POSITION), positions)
    assert {(p["symbol"], p["side"], p["qty"]) for p in positions} == {("AAPL", "long", "2"), ("MSFT", "short", "-1")}
    for position in positions:
        Position(**position)


def test_close_all_answers_207_with_position_closed_responses(alpaca: Alpaca) -> None:
    alpaca.order(qty="2")

    response = alpaca("DELETE", "/v2/positions", params={"cancel_orders": "true"})

    assert response.status_code == 207
    assert_valid(list_of(CLOSED), response.json())
    for item in response.json():
        ClosePositionResponse(**item)


def test_clock_matches_the_clock_schema(alpaca: Alpaca) -> None:
    clock = alpaca("GET", "/v2/clock").json()

    assert_valid(validator_for(CLOCK), clock)
    Clock(**clock)


@pytest.mark.parametrize("symbol", ["AAPL", "NOTRD"])
def test_assets_match_the_asset_schema(alpaca: Alpaca, symbol: str) -> None:
    asset = alpaca("GET", f"/v2/assets/{symbol}").json()

    assert_valid(validator_for(ASSET), asset)
    assert asset["tradable"] is (symbol == "AAPL")
    Asset(**asset)


# --- errors ----------------------------------------------------------------------------------------


def test_refusals_answer_alpacas_status_and_error_body(alpaca: Alpaca, fake_alpaca: FakeAlpacaServer) -> None:
    filled = alpaca.order(client_order_id="dup")
    anonymous = requests.get(f"{fake_alpaca.base_url}/v2/account", timeout=5)
    wrong = requests.get(
        f"{fake_alpaca.base_url}/v2/account",
        headers={"APCA-API-KEY-ID": DEFAULT_API_KEY, "APCA-API-SECRET-KEY": "wrong"},
        timeout=5,
    )
    answers = {
        "duplicate": alpaca("POST", "/v2/orders", json={**_market("dup")}),
        "buying power": alpaca("POST", "/v2/orders", json={**_market("bp"), "qty": "100000"}),
        "unknown symbol": alpaca("POST", "/v2/orders", json={**_market("sym"), "symbol": "NOPE"}),
        "not cancelable": alpaca("DELETE", f"/v2/orders/{filled['id']}"),
        "no such order": alpaca("GET", f"/v2/orders/{uuid.uuid4()}"),
        "no such client id": alpaca("GET", "/v2/orders:by_client_order_id", params={"client_order_id": "x"}),
        "no such asset": alpaca("GET", "/v2/assets/NOPE"),
        "bad list limit": alpaca("GET", "/v2/orders", params={"limit": 501}),
        "anonymous": anonymous,
        "wrong secret": wrong,
    }

    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses == {
        "duplicate": 422,
        "buying power": 403,
        "unknown symbol": 422,
        "not cancelable": 422,
        "no such order": 404,
        "no such client id": 404,
        "no such asset": 404,
        "bad list limit": 422,
        "anonymous": 401,
        "wrong secret": 403,
    }
    for response in answers.values():
        assert_valid(validator_for(ERROR), response.json())
    assert answers["duplicate"].json() == {"code": 40010001, "message": "client_order_id must be unique"}


def test_injected_429_and_500_carry_alpacas_error_body_and_rate_limit_headers(
    alpaca: Alpaca, fake_alpaca: FakeAlpacaServer
) -> None:
    fake_alpaca.set_fault("http_429", method="GET", path="/v2/clock", reset_at=1893456000)
    fake_alpaca.set_fault("http_500", method="GET", path="/v2/account")

    limited = alpaca("GET", "/v2/clock")
    failed = alpaca("GET", "/v2/account")

    assert (limited.status_code, failed.status_code) == (429, 500)
    assert_valid(validator_for(ERROR), limited.json())
    assert_valid(validator_for(ERROR), failed.json())
    header_schemas = _spec()["components"]["headers"]
    for header, name in (
        ("X-Ratelimit-Limit", "ratelimit_limit"),
        ("X-Ratelimit-Remaining", "ratelimit_remaining"),
        ("X-Ratelimit-Reset", "ratelimit_reset"),
    ):
        jsonschema.validate(int(limited.headers[header]), header_schemas[name]["schema"])
    assert (limited.headers["X-Ratelimit-Remaining"], limited.headers["X-Ratelimit-Reset"]) == ("0", "1893456000")


def test_injected_504_is_an_html_gateway_page(alpaca: Alpaca, fake_alpaca: FakeAlpacaServer) -> None:
    fake_alpaca.set_fault("http_504", path="/v2/account")

    response = alpaca("GET", "/v2/account")

    assert response.status_code == 504
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<h1>504 Gateway Time-out</h1>" in response.text


# --- market data (not in the Trading API document: shape from Alpaca's market data v2) -----------

LATEST_TRADES = {
    "type": "object",
    "required": ["trades"],
    "properties": {
        "trades": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["t", "p", "s", "x", "i", "c", "z"],
                "properties": {
                    "t": {"type": "string", "format": "date-time"},
                    "p": {"type": "number"},
                    "s": {"type": "integer"},
                    "x": {"type": "string"},
                    "i": {"type": "integer"},
                    "c": {"type": "array", "items": {"type": "string"}},
                    "z": {"type": "string"},
                },
            },
        }
    },
}


def test_latest_trades_answer_alpacas_market_data_shape(alpaca: Alpaca) -> None:
    response = alpaca("GET", "/v2/stocks/trades/latest", params={"symbols": "AAPL,MSFT,NOPE"})

    assert response.status_code == 200
    jsonschema.Draft4Validator(LATEST_TRADES, format_checker=_format_checker()).validate(response.json())
    assert set(response.json()["trades"]) == {"AAPL", "MSFT"}
    for symbol, trade in response.json()["trades"].items():
        Trade(symbol, trade)


def _market(client_order_id: str) -> dict[str, str]:
    return {
        "symbol": "AAPL",
        "qty": "1",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "client_order_id": client_order_id,
    }
