"""Where datasets live: ``benchmark.root``, defaulting to ``$CLBENCH_DATA`` or ``~/data/clbench``."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "CLBENCH_DATA"
FALLBACK = "~/data/clbench"


def default_root() -> str:
    """The default ``benchmark.root`` (kept unexpanded so the resolved config stays portable)."""
    return os.environ.get(ENV_VAR) or FALLBACK


def resolve_root(root: str) -> Path:
    """``root`` with ``~`` and environment variables expanded."""
    return Path(os.path.expandvars(os.path.expanduser(root)))
