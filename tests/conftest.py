"""Shared test fixtures: the ../shared folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli_runner import SHARED

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared is absent ({SHARED}); CI provides it")
    return SHARED
