"""Run a command as the terminal's foreground process group (what `make run` uses).

Ctrl-C sends SIGINT to the terminal's whole foreground process group. Under
`make run` that group holds make itself, and GNU make re-raises SIGINT on
itself once its recipe is done, so even a clean stop would end with exit
status 130. Here the command gets a process group of its own and the terminal
is handed to it: Ctrl-C reaches only the command (scripts/run.sh stops web,
worker and beat and exits 0), and make exits with the command's status.

Without a controlling terminal, or when started in the background, there is no
Ctrl-C to route: the command simply replaces this process.

usage: python scripts/foreground.py COMMAND [ARG...]
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys


def _foreground_tty() -> int | None:
    """The controlling terminal, if this process is in its foreground group."""
    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if os.tcgetpgrp(tty) == os.getpgrp():
            return tty
    except OSError:
        pass
    os.close(tty)
    return None


def _give(tty: int, group: int) -> None:
    with contextlib.suppress(OSError):
        os.tcsetpgrp(tty, group)


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write(__doc__.strip().splitlines()[-1] + "\n")
        return 2
    tty = _foreground_tty()
    if tty is None:
        os.execvp(argv[0], argv)
    own_group = os.getpgrp()
    # Handing the terminal over (and back) from outside the foreground group
    # raises SIGTTOU; ignore it here. Ctrl-C and Ctrl-\ are for the command.
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)
        os.tcsetpgrp(tty, os.getpgrp())
        for sig in (signal.SIGTTOU, signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        os.execvp(argv[0], argv)
    # Also here, so the group exists whichever runs first (fails once the child has exec'd: fine).
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)

    def forward(sig: int, _frame: object) -> None:
        # make passes SIGTERM (and a closing terminal SIGHUP) to its child, which is this process.
        with contextlib.suppress(OSError):
            os.killpg(pid, sig)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward)
    _give(tty, pid)
    try:
        while True:
            _, status = os.waitpid(pid, os.WUNTRACED)
            if not os.WIFSTOPPED(status):
                break
            # Ctrl-Z stopped the command: stop make too, so the shell gets the
            # terminal back and `fg` resumes all of it.
            _give(tty, own_group)
            os.killpg(own_group, signal.SIGSTOP)
            _give(tty, pid)
            os.killpg(pid, signal.SIGCONT)
    finally:
        _give(tty, own_group)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
