"""The extended session read from Alpaca's clock: pre-market before a session opening today, after-hours on weekdays."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from brokers.alpaca import extended_session_open

NY = ZoneInfo("America/New_York")


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=NY)  # 2026-11-23 is a Monday


@pytest.mark.parametrize(
    ("now", "next_open", "expected"),
    [
        (at(23, 7), at(23, 9, 30), True),  # Monday pre-market
        (at(23, 3, 59), at(23, 9, 30), False),  # before 04:00
        (at(26, 7), at(27, 9, 30), False),  # Thanksgiving morning: the next session opens tomorrow
        (at(23, 17), at(24, 9, 30), True),  # Monday after-hours
        (at(23, 20), at(24, 9, 30), False),  # 20:00: the extended session is over
        (at(28, 10), at(30, 9, 30), False),  # Saturday
    ],
)
def test_the_extended_session_from_the_clock(now, next_open, expected):
    assert extended_session_open(timestamp=now, is_open=False, next_open=next_open) is expected


def test_the_regular_session_is_part_of_the_extended_one():
    assert extended_session_open(timestamp=at(23, 11), is_open=True, next_open=at(24, 9, 30)) is True
