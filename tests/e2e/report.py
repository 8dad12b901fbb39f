"""The chaos scenario's figures, shown in pytest's terminal summary (with or without ``-s``)."""

from __future__ import annotations

import time

import pytest

REPORT_KEY = pytest.StashKey[list[str]]()


class Report:
    """Lines for the terminal summary, plus timestamped progress lines printed as the scenario goes."""

    def __init__(self, config: pytest.Config) -> None:
        self.lines: list[str] = []
        self.started = time.monotonic()
        config.stash[REPORT_KEY] = self.lines

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def progress(self, message: str) -> None:
        # Captured unless -s; shown with the failure report otherwise.
        print(f"[chaos {self.elapsed():6.1f}s] {message}", flush=True)

    def add(self, line: str = "") -> None:
        self.lines.append(line)
