import csv

import numpy as np
import pytest

from clbench import metrics
from clbench.matrix_io import read_matrix
from tests.cli_runner import run_cli


def test_zscl_published_matrices_reproduce_paper_numbers(shared_dir):
    fixture = shared_dir / "fixtures" / "zscl_mtil_order1"
    rows = list(csv.DictReader((fixture / "expected.csv").open()))
    assert len(rows) == 7
    for row in rows:
        matrix, names = read_matrix(fixture / row["file"])
        assert matrix.shape == (11, 11) and names[0] == "Aircraft"
        got = metrics.compute("mtil", matrix)
        for key in ("transfer", "avg", "last"):
            assert got[key] == pytest.approx(float(row[key]), abs=0.05 + 1e-9), (row["method"], key)


def test_mtil_metrics_by_hand():
    a = np.array([[50.0, 20.0, 30.0], [40.0, 80.0, 10.0], [30.0, 70.0, 90.0]])
    # transfer: task 2 -> mean(20) ; task 3 -> mean(30, 10) = 20 ; mean = 20
    assert metrics.transfer(a) == pytest.approx(20.0)
    assert metrics.average(a) == pytest.approx(np.mean([40.0, 170 / 3, 130 / 3]))
    assert metrics.last(a) == pytest.approx(190 / 3)
    assert metrics.backward_transfer(a) == pytest.approx(((30 - 50) + (70 - 80)) / 2)
    assert metrics.forgetting(a) == pytest.approx(((50 - 30) + (80 - 70)) / 2)


def test_cil_seen_accuracy_pools_by_test_size():
    nan = float("nan")
    a = np.array([[90.0, nan, nan], [80.0, 60.0, nan], [70.0, 50.0, 40.0]])
    seen = metrics.seen_accuracy(a, counts=[100, 100, 200])
    assert seen.tolist() == pytest.approx([90.0, 70.0, (70 * 100 + 50 * 100 + 40 * 200) / 400])
    got = metrics.compute("cil", a, counts=[100, 100, 200])
    assert got["last"] == pytest.approx(seen[-1])
    assert got["avg"] == pytest.approx(seen.mean())


def test_medxtreme_uses_auc_matrix():
    a = np.array([[60.0, 10.0], [50.0, 70.0]])
    auc = np.array([[80.0, 50.0], [75.0, 90.0]])
    got = metrics.compute("medxtreme", a, auc_matrix=auc)
    assert got == pytest.approx({"acc": 60.0, "auc": 82.5, "bwt": -10.0})


def test_non_square_matrix_rejected():
    with pytest.raises(ValueError):
        metrics.transfer(np.zeros((2, 3)))


def test_score_command_reproduces_fixture_json(shared_dir):
    import json

    out = run_cli("score", str(shared_dir / "fixtures/zscl_mtil_order1/zscl.csv"), "--protocol", "mtil", "--json")
    assert out.returncode == 0, out.stderr
    values = json.loads(out.stdout)["metrics"]
    assert round(values["transfer"], 1) == 68.1 and round(values["avg"], 1) == 75.4 and round(values["last"], 1) == 83.6


def test_score_command_reads_npy_and_json(tmp_path):
    a = np.array([[50.0, 20.0], [40.0, 80.0]])
    np.save(tmp_path / "m.npy", a)
    (tmp_path / "m.json").write_text('{"tasks": ["x", "y"], "rows": [[50, 20], [40, 80]]}')
    for name in ("m.npy", "m.json"):
        out = run_cli("score", str(tmp_path / name), "--protocol", "mtil", "--json")
        assert out.returncode == 0, out.stderr
        assert '"transfer": 20.0' in out.stdout


def test_score_command_bad_matrix_one_line(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    out = run_cli("score", str(tmp_path / "bad.csv"), "--protocol", "mtil")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "square" in out.stderr
