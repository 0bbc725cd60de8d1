"""The report's cost table: per (benchmark, method) phase seconds, throughput and peak memory from run.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clbench.report.cli import main
from clbench.report.collect import load_results
from clbench.report.cost import cost_table
from tests.report.report_fixtures import MTIL_TASKS, synthetic_matrix, write_run
from tests.report.test_report_cli import parse


def _with_cost(run_path: Path, training_s: float, gpu_mb: float | None) -> None:
    info = json.loads((run_path / "run.json").read_text())
    info["cost"] = {"phases": {"generation": {"seconds": 30.0, "images": 300, "images_per_s": 10.0},
                               "training": {"seconds": training_s, "images": 6400,
                                            "images_per_s": 6400 / training_s},
                               "evaluation": {"seconds": 20.0, "images": 4000, "images_per_s": 200.0}},
                    "peak_host_memory_mb": 2048.0, "peak_gpu_memory_mb": gpu_mb}
    (run_path / "run.json").write_text(json.dumps(info))


def test_cost_table_means_over_seeds_and_is_rendered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench, tasks = "shapes_mtil_order1", MTIL_TASKS
    for seed, training_s in ((0, 100.0), (1, 140.0)):
        run = write_run(tmp_path, bench, "gift", seed, synthetic_matrix("mtil", 8, "gift", seed), "mtil", tasks)
        _with_cost(run.path, training_s, gpu_mb=None)
    write_run(tmp_path, bench, "finetune", 0, synthetic_matrix("mtil", 8, "finetune", 0), "mtil", tasks)  # no cost
    table = cost_table(load_results(tmp_path))
    assert table is not None and [r.head for r in table.rows] == [[bench, "gift"]]
    cells = table.rows[0].cells
    assert cells["training_s"].value == pytest.approx(120.0) and cells["training_s"].std == pytest.approx(28.2843, 1e-4)
    assert cells["training_ips"].value == pytest.approx((64.0 + 6400 / 140) / 2)
    assert cells["host_gb"].value == pytest.approx(2.0) and cells["gpu_gb"].kind == "blank"
    assert main(parse(str(tmp_path), "--format", "md", "--out", str(tmp_path / "out"))) == 0
    md = capsys.readouterr().out
    assert "### Cost per run" in md
    assert f"| {bench} | gift | 2 | cpu | 30.0 ± 0.0 | 120.0 ± 28.3 | 20.0 ± 0.0 |" in md


def test_no_cost_table_for_runs_without_cost(tmp_path: Path) -> None:
    write_run(tmp_path, "shapes_mtil_order1", "finetune", 0, synthetic_matrix("mtil", 8, "finetune", 0), "mtil",
              MTIL_TASKS)
    assert cost_table(load_results(tmp_path)) is None


def test_cost_table_shows_parameter_counts(tmp_path: Path) -> None:
    counts = {"moe_adapters": {"total": 1_900_000, "trainable": 190_000, "added": 215_000},
              "finetune": {"total": 1_600_000, "trainable": 1_599_999, "added": 0}}
    for method, params in counts.items():
        run = write_run(tmp_path, "shapes_mtil_order1", method, 0, synthetic_matrix("mtil", 8, method, 0), "mtil",
                        MTIL_TASKS)
        _with_cost(run.path, 100.0, gpu_mb=None)
        info = json.loads((run.path / "run.json").read_text())
        (run.path / "run.json").write_text(json.dumps({**info, "parameters": params}))
    table = cost_table(load_results(tmp_path))
    assert table is not None
    rows = {r.method: r.cells for r in table.rows}
    assert [rows["finetune"][k].text for k in ("trainable", "added", "total")] == ["1,599,999", "0", "1,600,000"]
    assert [rows["moe_adapters"][k].text for k in ("trainable", "added", "total")] == ["190,000", "215,000",
                                                                                       "1,900,000"]
