"""Files only their owner can read (the dev secret key, demo credentials, the SQLite database)."""

from __future__ import annotations

import os
from pathlib import Path


def write_private_file(path: Path, content: str) -> None:
    """Write a file only its owner can read: created 0600, never briefly world-readable."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through O_CREAT: tighten it too
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content)


def make_private_file(path: Path) -> None:
    """Create (empty) or tighten a file to 0600 before anything writes secrets into it, e.g. the SQLite database."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    path.chmod(0o600)
