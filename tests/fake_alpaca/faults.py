"""Fault injection for the fake Alpaca: which request fails, how, and whether the venue acted.

A rule matches on method and path (``fnmatch`` patterns, so ``/v2/orders/*``
works) and fires for the next ``count`` matching requests, or with a seeded
``probability`` (optionally bounded by ``count``). Rules are tried in the order
they were added; the first that fires wins.
"""

from __future__ import annotations

import fnmatch
import itertools
import random
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

# kind -> whether the venue processes the request before the fault, by default.
FAULT_KINDS: dict[str, bool] = {
    "lose_response": True,  # processed, then the connection closes without an answer
    "http_500": False,  # JSON 500; set apply=True for "created, then the server failed"
    "http_504": False,  # an HTML gateway page; apply=True: the order was created anyway
    "http_429": False,  # rate limited: never processed
    "slow": True,  # processed at once, answered after `seconds` (past the client's timeout)
    "drop_connection": False,  # the socket closes before processing: nothing created
    # A gateway that hangs: the request is held `seconds` unprocessed, then the connection
    # closes. The caller times out not knowing; a process killed meanwhile left nothing done.
    "stall": False,
    # A slow gateway: the request is held `seconds` (past the client's timeout),
    # THEN processed and answered to a client long gone. An order appears late.
    "slow_accept": False,
}
# Kinds whose "processed or not" is the point of the kind, so apply cannot flip it.
_FIXED_APPLY = {"lose_response", "http_429", "slow", "drop_connection", "stall", "slow_accept"}


@dataclass
class FaultRule:
    kind: str
    method: str = "*"
    path: str = "*"
    count: int | None = 1
    probability: float | None = None
    seconds: float = 5.0  # slow: how long to sit on the answer; slow_accept: on the request
    apply: bool | None = None  # http_500 / http_504: process the request before failing?
    reset_in_s: int = 60  # http_429: X-Ratelimit-Reset = now + this ...
    reset_at: int | None = None  # ... unless given as unix seconds
    id: int = 0
    fired: int = field(default=0)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(FAULT_KINDS)}")
        if self.probability is not None and not 0 <= self.probability <= 1:
            raise ValueError("probability must be within [0, 1]")
        if self.probability is None and (self.count is None or self.count < 1):
            raise ValueError("a rule without probability needs count >= 1")
        if self.kind in _FIXED_APPLY and self.apply not in (None, FAULT_KINDS[self.kind]):
            raise ValueError(f"{self.kind} always has apply={FAULT_KINDS[self.kind]}")
        if self.apply is None:
            self.apply = FAULT_KINDS[self.kind]
        self.method = self.method.upper()

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def matches(self, method: str, path: str) -> bool:
        return fnmatch.fnmatchcase(method.upper(), self.method) and fnmatch.fnmatchcase(path, self.path)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultPlan:
    """The active rules, the seeded dice, and a count of faults injected by kind."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        with self._lock:
            self._random = random.Random(seed)
            self.rules: list[FaultRule] = []
            self.injected: Counter[str] = Counter()

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            rule.id = next(self._ids)
            self.rules.append(rule)
            return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def pick(self, method: str, path: str) -> FaultRule | None:
        """The fault for this request, if any; counts it as injected."""
        with self._lock:
            for rule in self.rules:
                if rule.exhausted or not rule.matches(method, path):
                    continue
                if rule.probability is not None and self._random.random() >= rule.probability:
                    continue
                rule.fired += 1
                self.injected[rule.kind] += 1
                return rule
            return None
