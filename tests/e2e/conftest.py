"""The chaos scenario prints its figures in the terminal summary, so they show in every pytest run."""

from __future__ import annotations

import pytest

from tests.e2e.report import REPORT_KEY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(REPORT_KEY, None)
    if not lines:
        return
    terminalreporter.section("chaos scenario: figures and invariants")
    for line in lines:
        terminalreporter.write_line(line)
