"""The deployment under test as real processes: a fake Alpaca, two gunicorns, Celery workers and beat.

Every process runs in its own session (so a signal reaches its whole process
group, prefork children included), writes its output to a log file under the
test's temporary directory, and is stopped by :meth:`Stack.stop_all` whatever
happens to the test. Nothing here prints the environment: it carries the
database URL and the (fake) broker keys.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote

import requests
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
HOSTNAME = socket.gethostname()


def free_port() -> int:
    """A loopback port that is free now (the OS picks it; the small race is acceptable in tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def database_url_for_subprocesses() -> str:
    """The pytest-django test database, for the subprocesses (never printed: it may hold a password)."""
    settings = connection.settings_dict
    user = quote(settings["USER"] or "postgres", safe="")
    password = settings.get("PASSWORD") or ""
    auth = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
    host = settings["HOST"] or "127.0.0.1"
    port = settings["PORT"] or 5432
    return f"postgresql://{auth}{host}:{port}/{settings['NAME']}"



class Stack:
    """Named subprocesses, each a process-group leader with its own log file."""

    def __init__(self, *, log_dir: Path, env: Mapping[str, str]) -> None:
        self.log_dir = log_dir
        self.env = dict(env)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.killed: set[str] = set()  # stopped on purpose by the scenario

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log_path = self.log_path(name)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_path(name)
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def alive(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    def died_unexpectedly(self) -> dict[str, str]:
        """Processes that exited without being killed on purpose, with the tail of their logs."""
        return {
            name: self.log_tail(name) for name in self.processes if name not in self.killed and not self.alive(name)
        }

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the process group of ``name`` (the process we started, and its children)."""
        process = self.processes[name]
        self.killed.add(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        if sig == signal.SIGKILL:
            process.wait(timeout=10)

    def stop_all(self, *, grace_s: float = 10.0) -> None:
        """SIGTERM every group, then SIGKILL whatever is still there after ``grace_s``."""
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in self.processes.values():
            remaining = max(0.1, deadline - time.monotonic())
            with contextlib.suppress(subprocess.TimeoutExpired):  # killed below with its whole group
                process.wait(timeout=remaining)
        for process in self.processes.values():
            # Even an exited leader may leave children (prefork pool) in its group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)

    # -- the services ---------------------------------------------------------

    def start_fake_alpaca(self, *, seed: int, cash: str) -> str:
        """``python -m tests.fake_alpaca`` on a port it picks; returns its base URL."""
        self.start(
            "fake-alpaca",
            [PYTHON, "-m", "tests.fake_alpaca", "--port", "0", "--seed", str(seed), "--fill-mode", "manual",
             "--cash", cash],
        )
        found: list[str] = []

        def listening() -> bool:
            match = re.search(r"fake-alpaca listening on (\S+)", self.log_path("fake-alpaca").read_text())
            if match:
                found.append(match.group(1))
            return bool(found) or not self.alive("fake-alpaca")

        wait_for(listening, timeout=20, what="the fake Alpaca to listen")
        assert found, f"the fake Alpaca did not start:\n{self.log_tail('fake-alpaca')}"
        return found[0]

    def start_web(self, name: str) -> str:
        """One gunicorn instance (its own master and two sync workers, as in docker-compose); returns its URL."""
        port = free_port()
        self.start(
            name,
            [PYTHON, "-m", "gunicorn", "backoffice.wsgi:application", f"--bind=127.0.0.1:{port}", "--workers=2",
             "--timeout=60", "--graceful-timeout=5", "--log-level=warning"],
        )
        return f"http://127.0.0.1:{port}"

    def wait_until_web_answers(self, name: str, url: str) -> None:
        def answers() -> bool:
            assert self.alive(name), f"{name} exited:\n{self.log_tail(name)}"
            try:
                return requests.get(f"{url}/v1/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(answers, timeout=60, what=f"{name} to answer /v1/health", interval=0.2)

    def start_worker(self, name: str) -> str:
        """``celery -A backoffice worker`` (prefork, as in production); returns its node name."""
        self.start(
            name,
            [PYTHON, "-m", "celery", "-A", "backoffice", "worker", "--concurrency=2", "--without-gossip",
             "--without-mingle", "--loglevel=WARNING", f"--hostname={name}@%h"],
        )
        return f"{name}@{HOSTNAME}"

    def start_beat(self) -> None:
        # The database scheduler comes from settings (CELERY_BEAT_SCHEDULER); a
        # one-second loop so one-second intervals are kept.
        self.start("beat", [PYTHON, "-m", "celery", "-A", "backoffice", "beat", "--loglevel=WARNING",
                            "--max-interval=1"])
