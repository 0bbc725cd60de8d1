"""The per-dataset column helpers added to clbench.metrics for the ZSCL Table 3 layout."""

from __future__ import annotations

import numpy as np
import pytest

from clbench import metrics


def test_columns_on_a_hand_matrix() -> None:
    a = np.array([[90.0, 40.0, 30.0],
                  [80.0, 85.0, 35.0],
                  [70.0, 75.0, 95.0]])
    t = metrics.transfer_per_task(a)
    assert np.isnan(t[0]) and t[1] == 40.0 and t[2] == pytest.approx(32.5)
    assert metrics.average_per_task(a).tolist() == pytest.approx([80.0, 200 / 3, 160 / 3])
    assert metrics.last_per_task(a).tolist() == [70.0, 75.0, 95.0]


def test_columns_average_to_the_protocol_metrics() -> None:
    a = np.random.default_rng(0).uniform(0, 100, (6, 6))
    assert np.mean(metrics.transfer_per_task(a)[1:]) == pytest.approx(metrics.transfer(a))
    assert np.mean(metrics.average_per_task(a)) == pytest.approx(metrics.average(a))
    assert np.mean(metrics.last_per_task(a)) == pytest.approx(metrics.last(a))


def test_unevaluated_rows_leave_later_columns_nan() -> None:
    a = np.full((4, 4), np.nan)
    a[:2] = 50.0
    t = metrics.transfer_per_task(a)
    assert t[1] == 50.0 and t[2] == 50.0 and np.isnan(t[3])  # column 3 needs row 2
    assert np.isnan(metrics.average_per_task(a)).all() and np.isnan(metrics.last_per_task(a)).all()
