"""The one-line-error contract, checked the same way for every case of the corpus.

Predictable bad input ends with exit code 2, exactly one line on stderr, no traceback, and nothing partial
on disk (no new file appears where the command would have written, no temporary left behind).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.cli_runner import REPO

KILL_AT_WRITE = "CLBENCH_TEST_KILL_AT_WRITE"
WRITES_LOG = "CLBENCH_TEST_WRITES_LOG"


def clbench(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The ``clbench`` command in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "clbench.cli", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=timeout, env={**os.environ, **(env or {})})


def snapshot(*roots: Path) -> dict[str, bytes | None]:
    """Every file below ``roots`` with its content (folders as None): compare before/after a refused command."""
    files: dict[str, bytes | None] = {}
    for root in roots:
        if root.is_file():
            files[str(root)] = root.read_bytes()
            continue
        if not root.exists():
            continue
        for p in sorted(root.rglob("*")):
            if p.name == ".lock":  # the lock file may be created by the refused command; it holds nothing
                continue
            files[str(p)] = p.read_bytes() if p.is_file() else None
    return files


def assert_one_line_error(result: subprocess.CompletedProcess[str], *must_contain: str,
                          unchanged: Sequence[Path] = (), before: dict[str, bytes | None] | None = None) -> str:
    """Exit 2, one stderr line starting with ``clbench``, no traceback; ``unchanged`` paths exactly as ``before``."""
    err = result.stderr
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert result.returncode == 2, (result.returncode, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("clbench"), err
    for text in must_contain:
        assert text in lines[0], (text, lines[0])
    if unchanged:
        assert snapshot(*unchanged) == (before or {}), "the refused command changed files on disk"
        leftovers = [p for root in unchanged if root.is_dir() for p in root.rglob("*.tmp")]
        assert not leftovers, leftovers
    return lines[0]


def fault_injected(*args: str, kill_at: int, writes_log: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``clbench`` with the store's ``write_atomic`` wrapped: SIGKILL just before the ``kill_at``-th file write
    is renamed into place (a half-written temporary left behind, as a real kill would); 0 = never.

    Every write's file name is appended to ``writes_log``, which tells a test the order of writes.
    """
    env = {KILL_AT_WRITE: str(kill_at), WRITES_LOG: str(writes_log)}
    return subprocess.run([sys.executable, "-m", "tests.reliability.kill_at_write", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=timeout, env={**os.environ, **env})

