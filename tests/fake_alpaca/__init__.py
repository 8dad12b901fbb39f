"""A fake Alpaca (Trading API + latest trades) on loopback, with fault injection.

In-process: :class:`FakeAlpacaServer` (or the ``fake_alpaca`` fixture in
``tests.fake_alpaca.fixtures``). As a process: ``python -m tests.fake_alpaca``,
driven through :class:`FakeAlpacaControl`.
"""

from tests.fake_alpaca.control import FakeAlpacaControl
from tests.fake_alpaca.faults import FAULT_KINDS, FaultRule
from tests.fake_alpaca.server import DEFAULT_API_KEY, DEFAULT_SECRET_KEY, FakeAlpacaServer, RecordedRequest

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_SECRET_KEY",
    "FAULT_KINDS",
    "FakeAlpacaControl",
    "FakeAlpacaServer",
    "FaultRule",
    "RecordedRequest",
]
