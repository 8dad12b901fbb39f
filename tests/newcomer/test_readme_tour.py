"""The README's tour, run literally, as a newcomer runs it: so the README cannot drift from the product.

Terminal 1 is a pseudo-terminal running the README's ``make run`` block in a
fresh clone on a free PORT (the real Makefile, run.sh and foreground.py; only
the install is skipped, see conftest). Terminal 2 is one bash session in the
same checkout, with a newcomer's environment, fed the README's
``sh tour:NAME`` blocks in order, word for word; each answer is checked by
NAME below. Then Ctrl-C (the byte a terminal sends) must stop everything and
exit 0, and a second start must say again where the credentials are.

Every process started here is stopped in ``finally``: terminal 2's shell, the
make process group, and web/worker/beat (their own sessions) by pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import queue
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.newcomer.conftest import PROJECT, make_clone, newcomer_env

pytestmark = pytest.mark.tour

README = PROJECT / "README.md"
TOUR_BLOCK = re.compile(r"^```sh tour:(?P<name>[\w-]+)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
NEW_OFFICER_PASSWORD = "tour-Passw0rd-Q7x9v"
START_TIMEOUT_S = 150
STEP_TIMEOUT_S = 60


def tour_blocks() -> list[tuple[str, str]]:
    return [(m["name"], m["body"].rstrip("\n")) for m in TOUR_BLOCK.finditer(README.read_text())]


def json_docs(text: str) -> list[Any]:
    """The JSON documents in ``text``, in order (curl -s prints bodies back to back)."""
    decoder, docs, i = json.JSONDecoder(), [], 0
    while (start := _next_brace(text, i)) is not None:
        doc, i = decoder.raw_decode(text, start)
        docs.append(doc)
    return docs


def _next_brace(text: str, i: int) -> int | None:
    positions = [p for p in (text.find("{", i), text.find("[", i)) if p >= 0]
    return min(positions) if positions else None


# --- What each step must answer (the README's prose says the same) -------------


def check_find(out: str) -> None:
    assert json_docs(out)[-1]["status"] in {"ok", "degraded"}, out


def check_submit(out: str) -> None:
    order = json_docs(out)[-1]
    assert (order["symbol"], order["side"], order["status"]) == ("AAPL", "buy", "submitted"), order


def check_watch(out: str) -> None:
    page = json_docs(out)[-1]
    assert page["results"] and {o["status"] for o in page["results"]} == {"filled"}, page


def check_positions(out: str) -> None:
    positions, risk = json_docs(out)
    assert "AAPL" in json.dumps(positions), positions
    assert risk, risk


def check_demo_trader(out: str) -> None:
    assert "demo trader sent 5 orders" in out, out
    assert len(re.findall(r"-> (200|201|400) ", out)) == 5, out


def check_strategy_kill(out: str) -> None:
    state = json_docs(out)[-1]
    demo = next(s for s in state["strategies"] if s["strategy"] == "demo")
    assert demo["active"] is True and demo["activated_by"] == "demo-client", state
    assert state["global"]["active"] is False, state


def check_denied(out: str) -> None:
    problem = json_docs(out)[-1]
    assert "kill_switch_active" in {v["code"] for v in problem["violations"]}, problem


def check_officer_login(out: str) -> None:
    assert out.strip().splitlines()[-1] == "302", out


def check_global_kill(out: str) -> None:
    state = json_docs(out)[-1]
    assert state["global"]["active"] is True, state
    assert (state["global"]["activated_by"], state["global"]["source"]) == ("officer", "api"), state


def check_reset(out: str) -> None:
    after_global, after_demo = json_docs(out)
    assert after_global["global"]["active"] is False, after_global
    assert all(s["active"] is False for s in after_demo["strategies"]), after_demo


def check_docs(out: str) -> None:
    assert out.split() == ["401", "200"], out


def check_new_client(out: str) -> None:
    lines = out.strip().splitlines()
    assert lines[0] == "API client my-bot may trade: my-strategy", lines
    assert re.fullmatch(r"[0-9a-f]{40}", lines[-1]), lines


def check_new_officer(out: str) -> None:
    assert "Risk officer alice created" in out, out


def check_logout(out: str) -> None:
    assert out.strip() == "", out


CHECKS: dict[str, Callable[[str], None]] = {
    "find": check_find,
    "submit": check_submit,
    "watch": check_watch,
    "positions": check_positions,
    "demo-trader": check_demo_trader,
    "strategy-kill": check_strategy_kill,
    "denied": check_denied,
    "officer-login": check_officer_login,
    "global-kill": check_global_kill,
    "reset": check_reset,
    "docs": check_docs,
    "new-client": check_new_client,
    "new-officer": check_new_officer,
    "logout": check_logout,
}
RETRIED = {"watch"}  # the README says "repeat this until it shows up"
TYPED = {"new-officer": f"{NEW_OFFICER_PASSWORD}\n{NEW_OFFICER_PASSWORD}\n"}  # what the person types at the prompts


# --- The two terminals --------------------------------------------------------------


class Terminal1:
    """``make run`` on a pseudo-terminal: its own session, the way a person's terminal runs it."""

    def __init__(self, clone: Path, command: str, port: int) -> None:
        self.output = ""
        self._lock = threading.Lock()
        pid, fd = pty.fork()
        if pid == 0:  # the child: a login shell's job, in the clone
            os.chdir(clone)
            os.execve("/bin/bash", ["bash", "--norc", "--noprofile", "-c", command], newcomer_env(PORT=str(port)))
        self.pid, self.fd = pid, fd
        self.status: int | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self.output += chunk.decode("utf-8", "replace")

    def text(self) -> str:
        with self._lock:
            return self.output

    def wait_for(self, needle: str, timeout: float, since: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text()[since:]:
            if self.poll() is not None:
                pytest.fail(f"make run exited ({self.status}) before {needle!r}:\n{self.text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {needle!r} within {timeout:.0f}s:\n{self.text()[-3000:]}")
            time.sleep(0.2)

    def poll(self) -> int | None:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def ctrl_c(self, timeout: float = 60) -> int:
        os.write(self.fd, b"\x03")
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail(f"make run still running {timeout:.0f}s after Ctrl-C:\n{self.text()[-3000:]}")
            time.sleep(0.2)
        time.sleep(0.3)  # the reader drains the last lines
        return self.status  # type: ignore[return-value]

    def kill(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(OSError, ChildProcessError):
                os.killpg(self.pid, signal.SIGTERM)
            time.sleep(1)
            with contextlib.suppress(OSError, ChildProcessError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(OSError, ChildProcessError):
                os.waitpid(self.pid, 0)
        with contextlib.suppress(OSError, ChildProcessError):
            os.close(self.fd)


class Terminal2:
    """One bash session in the checkout, fed commands like a person types them."""

    def __init__(self, clone: Path) -> None:
        # A new session: no controlling terminal, so a password prompt reads what is "typed" on stdin.
        self.shell = subprocess.Popen(
            ["bash", "--norc", "--noprofile", "-s"], cwd=clone, env=newcomer_env(), start_new_session=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.shell.stdout is not None
        for line in self.shell.stdout:
            self.lines.put(line)

    def run(self, commands: str, typed: str = "") -> tuple[int, str]:
        assert self.shell.stdin is not None
        done = f"@@done-{uuid.uuid4().hex}"
        if typed:  # the text a person types at the command's prompts
            commands += f" <<'TYPED'\n{typed}TYPED"
        self.shell.stdin.write(f"{commands}\nprintf '\\n{done} %s\\n' \"$?\"\n")
        self.shell.stdin.flush()
        out: list[str] = []
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no answer within {STEP_TIMEOUT_S}s to:\n{commands}\nso far:\n{''.join(out)}")
            if line.startswith(done):
                return int(line.split()[1]), "".join(out)
            out.append(line)

    def close(self) -> None:
        with contextlib.suppress(OSError, ChildProcessError):
            os.killpg(self.shell.pid, signal.SIGKILL)
        self.shell.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _processes_of(clone: Path) -> list[int]:
    """Live processes whose command line names the clone (web, worker, beat run from its .venv)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(clone).encode() in cmdline:
            found.append(int(entry.name))
    return found


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


# --- The test -------------------------------------------------------------------------


def test_the_readme_tour_works_literally_on_a_fresh_clone_in_two_terminals(tmp_path: Path) -> None:
    blocks = tour_blocks()
    names = [name for name, _ in blocks]
    assert names[0] == "terminal-1" and blocks[0][1] == "make run", blocks[:1]
    assert names[1:] == list(CHECKS), f"README tour steps {names[1:]} vs checked steps {list(CHECKS)}"

    clone = make_clone(tmp_path)
    port = _free_port()
    terminal1 = Terminal1(clone, blocks[0][1], port)
    terminal2: Terminal2 | None = None
    try:
        terminal1.wait_for("press Ctrl-C to stop", START_TIMEOUT_S)
        first_start = terminal1.text()
        credentials = (clone / "var" / "demo-credentials").read_text()
        secrets = [line.split(": ", 1)[1] for line in credentials.splitlines()]
        assert len(secrets) == 3 and secrets[0] == "officer"
        assert "First start: demo users created." in first_start
        assert "password in var/demo-credentials" in first_start and "var/demo-api-token" in first_start
        assert (clone / "var" / "run-url").read_text().strip() == f"http://127.0.0.1:{port}"

        terminal2 = Terminal2(clone)
        for name, body in blocks[1:]:
            deadline = time.monotonic() + STEP_TIMEOUT_S
            while True:
                rc, out = terminal2.run(body, TYPED.get(name, ""))
                try:
                    assert rc == 0, f"exit status {rc}"
                    CHECKS[name](out)
                    break
                except Exception as failure:  # any wrong answer (even unparsable) fails the step, by name
                    if name not in RETRIED or time.monotonic() > deadline:
                        pytest.fail(f"tour step {name!r} failed: {failure}\n--- ran:\n{body}\n--- answered:\n{out}")
                    time.sleep(1)
            if name == "docs":  # still logged in: the officer's actions are in the audit trail, under their name
                _, page = terminal2.run('curl -s -b "$JAR" "$URL/admin/risk/riskevent/?q=tour"')
                assert "tour: stop everything" in page and "officer" in page, page[-2000:]

        assert terminal1.ctrl_c() == 0, terminal1.text()[-2000:]
        assert "stopping web, worker and beat" in terminal1.text() and "Error" not in terminal1.text()
        assert not (clone / "var" / "run-url").exists()
        assert not _listening(port) and _processes_of(clone) == []

        # Second start: no new users, but the same reminder of where the credentials are.
        terminal1 = Terminal1(clone, blocks[0][1], port)
        terminal1.wait_for("press Ctrl-C to stop", START_TIMEOUT_S)
        second_start = terminal1.text()
        assert "First start" not in second_start
        assert "password in var/demo-credentials" in second_start and "var/demo-api-token" in second_start
        assert terminal1.ctrl_c() == 0, terminal1.text()[-2000:]

        logs = "".join(p.read_text(errors="replace") for p in (clone / "var" / "log").glob("*.log"))
        for secret in secrets[1:]:
            assert secret not in first_start + second_start + logs, "a credential was printed or logged"
    finally:
        if terminal2 is not None:
            terminal2.close()
        terminal1.kill()
        for pid in _processes_of(clone):
            with contextlib.suppress(OSError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
