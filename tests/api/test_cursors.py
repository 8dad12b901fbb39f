"""A forged or broken cursor is a 400 problem, never a 500; a real cursor still pages."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import order_body

pytestmark = pytest.mark.django_db


def cursor(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


FORGED = [
    cursor("p=garbage"),
    cursor("p=1e400"),
    cursor("p="),
    cursor("p=2026-13-45T00:00:00Z"),
    cursor("p=0001-01-01T00:00:00+01:00"),
    cursor("p=2026-01-01T00:00:00"),  # naive: not a position this API ever hands out
    cursor("p=2026-01-01\x00"),
    cursor("r=2&p=garbage"),
    cursor("o=-1"),
    "not base64 at all!",
    "\u00e9\u00e9",
]


@pytest.mark.parametrize("value", FORGED)
@pytest.mark.parametrize("path", ["/v1/orders", "/v1/fills"])
def test_a_forged_cursor_is_a_400_problem(on_postgres, alice_api, market, path, value):
    alice_api.post("/v1/orders", order_body(), format="json")

    response = alice_api.get(path, {"cursor": value})

    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    assert "cursor" in response.json()["errors"]


def test_the_cursors_the_api_hands_out_still_page(alice_api, alpha, market):
    from risk.models import Strategy

    Strategy.objects.filter(pk=alpha.pk).update(max_orders_per_second=1000, max_orders_per_minute=1000)
    for n in range(5):
        assert alice_api.post("/v1/orders", order_body(client_order_id=f"page-{n}"), format="json").status_code == 201

    seen, url = [], "/v1/orders?limit=2"
    while url:
        page = alice_api.get(url).json()
        seen += [o["client_order_id"] for o in page["results"]]
        url = page["next"]

    assert seen == [f"page-{n}" for n in reversed(range(5))]


def test_an_absurd_offset_in_a_cursor_is_capped_not_an_error(alice_api, market):
    alice_api.post("/v1/orders", order_body(), format="json")

    position = "2026-01-01+00%3A00%3A00%2B00%3A00"  # urlencoded, as DRF writes it
    response = alice_api.get("/v1/orders", {"cursor": cursor(f"o=99999999999999999999999&p={position}")})

    assert response.status_code == 200


@pytest.mark.parametrize(
    "value",
    [
        base64.urlsafe_b64encode(b"e1:99999999999999999999999:1").decode(),
        base64.urlsafe_b64encode(b"e1:1:99999999999999999999999").decode(),
        base64.urlsafe_b64encode(b"e1:-1:0").decode(),
        base64.urlsafe_b64encode(b"p=garbage").decode(),
        "\u00e9",
    ],
)
def test_a_forged_event_feed_cursor_is_a_400_problem(on_postgres, alice_api, value):
    response = alice_api.get("/v1/events", {"after": value})

    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
