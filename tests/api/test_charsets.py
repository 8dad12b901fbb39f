"""A JSON body is UTF-8 only: any other charset is 415 problem+json, decided before a byte is decoded.

Python's codecs include bz2, zlib, base64 and rot13; a parser that decodes
with the charset the client names is a decompression bomb. BOMB is 453
bytes that bz2 expands to 400 MiB: before, the web process decoded it (4.9 s,
890 MB); now it is refused from the header, and the request allocates
almost nothing.
"""

from __future__ import annotations

import base64
import bz2
import time
import tracemalloc

import pytest

from orders.models import Order

pytestmark = pytest.mark.django_db

BOMB = base64.b64decode(
    "QlpoOTFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWXKBCUgAMIwwAIIAQAAACCAAMMwFKacYkILYJCC8XckU4UJAsMOXRA=="
)
PLAIN = b'{"strategy": "alpha", "symbol": "AAPL", "side": "buy", "qty": "1", "type": "market"}'


def test_the_bomb_is_a_bomb():
    """(What the refusal is worth: the first MiB of its 400 comes out of 453 bytes.)"""
    assert len(BOMB) < 500
    assert len(bz2.BZ2Decompressor().decompress(BOMB, max_length=1 << 20)) == 1 << 20


def test_a_bz2_decompression_bomb_is_refused_from_the_header_without_being_decoded(alice_api):
    tracemalloc.start()
    started = time.perf_counter()
    try:
        response = alice_api.generic("POST", "/v1/orders", BOMB, content_type="application/json; charset=bz2")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started

    assert response.status_code == 415
    assert response["Content-Type"] == "application/problem+json"
    assert "UTF-8" in response.json()["detail"]
    assert peak < 20 * 1024 * 1024, f"{peak} bytes allocated for a refused 453-byte body"
    print(f"bomb refused in {elapsed * 1000:.1f} ms, peak allocation {peak / 1024:.0f} KiB")
    assert Order.objects.count() == 0


@pytest.mark.parametrize("charset", ["bz2", "zlib", "base64", "rot13", "hex", "uu", "quopri", "utf-16", "latin-1",
                                     "utf-8-sig", "ascii", "no-such-codec", '"bz2"', "BZ2_CODEC"])
@pytest.mark.parametrize("body", [PLAIN, b"\x00\xff garbage"], ids=["plain JSON", "garbage"])
def test_a_body_in_any_charset_but_utf8_is_415_problem_json(alice_api, market, charset, body):
    response = alice_api.generic("POST", "/v1/orders", body, content_type=f"application/json; charset={charset}")

    assert response.status_code == 415, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 415
    assert Order.objects.count() == 0


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "utf8", "UTF8", "utf_8", "u8", '"utf-8"'])
def test_utf8_under_any_of_its_names_is_accepted(alice_api, market, charset):
    response = alice_api.generic("POST", "/v1/orders", PLAIN, content_type=f"application/json; charset={charset}")

    assert response.status_code == 201, response.content


def test_a_compressed_body_is_refused_not_decompressed(alice_api, market):
    response = alice_api.generic(
        "POST", "/v1/orders", BOMB, content_type="application/json", HTTP_CONTENT_ENCODING="bzip2"
    )

    assert response.status_code == 415
    assert response["Content-Type"] == "application/problem+json"


def test_the_size_limit_counts_bytes_read_not_a_declared_length(alice_api, market):
    """A body far over the limit is 413 after reading limit + 1 bytes; invalid UTF-8 is 400, never decoded loosely."""
    big = b'{"pad": "' + b"x" * 70_000 + b'"}'
    assert alice_api.generic("POST", "/v1/orders", big, content_type="application/json").status_code == 413
    broken = alice_api.generic("POST", "/v1/orders", b'{"symbol": "\xff\xfe"}', content_type="application/json")
    assert broken.status_code == 400 and broken["Content-Type"] == "application/problem+json"


def test_json_nested_too_deeply_is_a_400_not_a_500(alice_api):
    response = alice_api.generic("POST", "/v1/orders", "[" * 60_000, content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("charset", ["bz2", "rot13", "zlib"])
def test_an_admin_form_in_an_odd_charset_is_refused_not_a_500(client, charset):
    """Django decodes form bodies with the named charset; a non-text codec there was a 500 (login page included)."""
    client.raise_request_exception = False
    response = client.generic(
        "POST", "/admin/login/", b"username=olivia&password=x",
        content_type=f"application/x-www-form-urlencoded; charset={charset}",
    )

    assert response.status_code == 415
