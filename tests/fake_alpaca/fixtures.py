"""pytest fixtures for the fake Alpaca.

Import the fixture into a test module (``from tests.fake_alpaca.fixtures import
fake_alpaca``), or list this module in the root conftest's ``pytest_plugins``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fake_alpaca.server import FakeAlpacaServer


@pytest.fixture
def fake_alpaca() -> Iterator[FakeAlpacaServer]:
    """A fresh fake on a free loopback port: fills market orders at once, seed 1234."""
    with FakeAlpacaServer(seed=1234) as fake:
        yield fake
