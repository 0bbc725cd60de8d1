"""``python -m tests.reliability.kill_at_write <clbench args>``: the CLI with a fault injected in the store.

The n-th ``write_atomic`` (n from ``$CLBENCH_TEST_KILL_AT_WRITE``) writes half its data to a temporary file
next to the target and then SIGKILLs the process: exactly the state a scheduler's kill leaves mid-write. Each
write's file name is logged to ``$CLBENCH_TEST_WRITES_LOG`` first. No production code knows about this hook.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import clbench.store as store
from clbench.cli import main

_original = store.write_atomic
_count = 0


def _write_atomic(path: Path, data: bytes | str) -> None:
    global _count
    _count += 1
    with open(os.environ["CLBENCH_TEST_WRITES_LOG"], "a") as log:
        log.write(f"{Path(path).name}\n")
    if _count == int(os.environ["CLBENCH_TEST_KILL_AT_WRITE"]):
        raw = data.encode() if isinstance(data, str) else data
        partial = Path(path).parent / f".{Path(path).name}.killed{_count}.tmp"
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(raw[: len(raw) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    _original(path, data)


store.write_atomic = _write_atomic

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
