import math
import os

import numpy as np
import pytest

from clbench.errors import UserError
from clbench.matrix_io import read_matrix
from clbench.store import MatrixRecord, RunDir, write_atomic


def test_matrix_record_roundtrip_keeps_pending_rows_and_nan(tmp_path):
    rec = MatrixRecord.empty(["a", "b", "c"], with_auc=True)
    rec.rows[0] = [50.0, float("nan"), 10.0]
    rec.initial = [1.0, 2.0, 3.0]
    run = RunDir(tmp_path / "r")
    run.write_matrix(rec)
    back = run.read_matrix()
    assert back.rows[1] is None and back.rows[2] is None and back.completed() == 1
    assert math.isnan(back.rows[0][1]) and back.initial == [1.0, 2.0, 3.0]
    assert back.auc == [None, None, None]


def test_matrix_csv_is_readable_by_score(tmp_path):
    rec = MatrixRecord(tasks=["x", "y"], rows=[[50.0, 20.0], [40.0, 80.0]])
    run = RunDir(tmp_path / "r")
    run.write_matrix(rec)
    matrix, names = read_matrix(run.path / "matrix.csv")
    assert names == ["x", "y"] and np.array_equal(matrix, rec.array())


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    write_atomic(target, "old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(UserError, match=f"cannot write {target}: disk full"):  # one line for the CLI, not a traceback
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"], "no temporary file left behind"
