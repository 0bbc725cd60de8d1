"""Fixtures of the reporter tests (helpers live in report_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.report.report_fixtures import build_results


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    return build_results(tmp_path / "results")
