"""Shared test set-up: one CPU thread, offline hub, the ../shared folder."""

from __future__ import annotations

import os
from pathlib import Path

# Before torch is imported, and inherited by every clbench subprocess a test starts: tiny models run several
# times faster on one intra-op thread, and in-process and subprocess runs then compute in the same order.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.cli_runner import SHARED  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared is absent ({SHARED}); CI provides it")
    return SHARED
