"""Run the ``clbench`` command in a subprocess, as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clbench.cli", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=timeout)


class Result:
    """What a CLI call returned: exit code and captured output (same fields as CompletedProcess)."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def invoke(capsys, *args: str) -> Result:  # noqa: ANN001 - pytest's capsys fixture
    """Call ``clbench.cli.main`` in this process (fast), capturing its output like a subprocess would."""
    from clbench.cli import main

    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)
