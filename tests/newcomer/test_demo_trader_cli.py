"""demo_trader from a second terminal when nothing answers: one clear line and a failure status, no traceback."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from tests.newcomer.conftest import newcomer_env


def test_an_unreachable_back_office_is_one_line_naming_the_address_and_where_it_came_from(fresh_clone: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    run_url = fresh_clone / "var" / "run-url"
    run_url.parent.mkdir(exist_ok=True)
    run_url.write_text(dead + "\n")
    try:
        result = subprocess.run(
            [".venv/bin/python", "manage.py", "demo_trader", "--strategy", "demo", "--token", "not-used"],
            cwd=fresh_clone, env=newcomer_env(), capture_output=True, text=True, timeout=120,
        )
    finally:
        run_url.unlink()

    lines = result.stderr.splitlines()
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    assert f"cannot reach the back office at {dead} (from var/run-url" in lines[0], lines[0]
    assert "make run" in lines[0]
