"""Published rows: the data files themselves, and Δ = ours − paper in the tables."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from clbench import metrics
from clbench.errors import UserError
from clbench.report.collect import load_results
from clbench.report.published import QUALITY, default_dirs, load_published, load_published_file
from clbench.report.render import to_markdown
from clbench.report.tables import leaderboards
from tests.report.report_fixtures import synthetic_matrix, write_run, zscl_matrix

BENCHMARKS = {"mtil_order1", "mtil_order2", "cifar100_10", "cifar100_20", "cifar100_50", "tinyimagenet_5",
              "tinyimagenet_10", "tinyimagenet_20", "hieramed_order1", "hieramed_order2", "medxtreme_order1",
              "medxtreme_order2", "xtail_order1"}
METHODS = {"zeroshot", "finetune", "l2", "lwf", "icarl", "lwf_vr", "wise_ft", "zscl", "moe_adapters", "snd", "diki",
           "gift", "primed_dyn", "rail_dual", "condu", "condu_lora"}
FIXTURE_TO_METHOD = {"continual_ft": "finetune", "lwf": "lwf", "icarl": "icarl", "lwf_vr": "lwf_vr",
                     "wise_ft": "wise_ft", "zscl": "zscl"}


def test_data_files_use_clbench_names_quality_marks_and_citations(tmp_path: Path) -> None:
    rows = load_published(default_dirs(tmp_path))
    assert {r.benchmark for r in rows} == BENCHMARKS
    assert {r.method for r in rows} <= METHODS
    assert all(r.quality in QUALITY and r.citation and r.source for r in rows)
    zscl = next(r for r in rows if r.method == "zscl" and r.benchmark == "mtil_order1")
    assert (zscl.values, zscl.quality) == ({"transfer": 68.1, "avg": 75.4, "last": 83.6}, "code")
    medx = next(r for r in rows if r.method == "finetune" and r.benchmark == "medxtreme_order2")
    assert medx.values == {"acc": 60.0, "auc": 84.1, "bwt": -16.0}
    rail = {r.benchmark: r for r in rows if r.method == "rail_dual"}
    assert rail["mtil_order1"].values == {"transfer": 69.4, "avg": 77.8, "last": 86.8}
    assert rail["xtail_order1"].values == {"transfer": None, "avg": 71.3, "last": 82.3}
    assert {r.quality for r in rows if r.method in ("rail_dual", "condu", "condu_lora")} == {"secondary"}


def test_mtil_order1_rows_agree_with_zscl_released_matrices(shared_dir: Path, tmp_path: Path) -> None:
    rows = {r.method: r for r in load_published(default_dirs(tmp_path), ["mtil_order1"])}
    with open(shared_dir / "fixtures" / "zscl_mtil_order1" / "expected.csv") as fh:
        printed = {line["method"]: line for line in csv.DictReader(fh)}
    for fixture, method in FIXTURE_TO_METHOD.items():
        names, a = zscl_matrix(fixture)
        row = rows[method]
        for name in ("transfer", "avg", "last"):
            assert row.value(name) == pytest.approx(float(printed[fixture][name]), abs=1e-9)
        for j, task in enumerate(names):
            for name, per_task in (("transfer", metrics.transfer_per_task), ("avg", metrics.average_per_task),
                                   ("last", metrics.last_per_task)):
                value = per_task(a)[j]
                if np.isnan(value):
                    assert row.value(name, task) is None
                else:
                    assert row.value(name, task) == pytest.approx(value, abs=0.051), (method, name, task)


def _mtil_order1_runs(root: Path, shared_dir: Path) -> tuple[list[str], np.ndarray]:
    names, zscl = zscl_matrix("zscl")
    ours = zscl.copy()
    ours[-1] += 1.0  # our ZSCL ends one point higher on every dataset than the released run
    write_run(root, "mtil_order1", "zscl", 0, ours, "mtil", names)
    write_run(root, "mtil_order1", "mymethod", 0, zscl_matrix("lwf")[1], "mtil", names)
    return names, ours


def test_delta_is_ours_minus_paper_on_mtil(tmp_path: Path, shared_dir: Path) -> None:
    names, ours = _mtil_order1_runs(tmp_path, shared_dir)
    results = load_results(tmp_path)
    published = load_published(default_dirs(tmp_path), results.benchmarks())
    (table,) = leaderboards(results, published)
    paper = {"transfer": 68.1, "avg": 75.4, "last": 83.6}
    computed = {"transfer": metrics.transfer(ours), "avg": metrics.average(ours), "last": metrics.last(ours)}
    for r in (r for r in table.rows if r.method == "zscl" and not r.published):
        assert r.cells["delta"].kind == "delta"
        assert r.cells["delta"].value == pytest.approx(computed[r.metric] - paper[r.metric])
    assert computed["last"] - paper["last"] == pytest.approx(1.0, abs=0.06)
    # our method has no published row: no Δ; published-only methods still get their rows
    assert all(r.cells["delta"].kind == "blank" for r in table.rows if r.method == "mymethod")
    labels = [r.head[0] for r in table.rows if r.published]
    assert "zscl · ZSCL Tab. 3 [code]" in labels and "gift · GIFT CVPR'25 [secondary]" in labels
    # per-dataset published columns line up with our task names
    pub_last = next(r for r in table.rows if r.method == "zscl" and r.published and r.metric == "last")
    assert pub_last.cells["task:Aircraft"].value == 40.6
    md = to_markdown(table)
    assert "| Δ |" in md and f"{computed['last'] - paper['last']:+.1f}" in md
    assert any("Zheng et al." in n for n in table.notes)


def test_delta_columns_on_class_incremental_settings(tmp_path: Path) -> None:
    for steps in (10, 20):
        write_run(tmp_path, f"cifar100_{steps}", "moe_adapters", 0, synthetic_matrix("cil", steps, "zscl", 0), "cil",
                  [f"t{i}" for i in range(steps)])
    results = load_results(tmp_path)
    (table,) = leaderboards(results, load_published(default_dirs(tmp_path), results.benchmarks()))
    ours = next(r for r in table.rows if not r.published)
    seen = metrics.seen_accuracy(synthetic_matrix("cil", 10, "zscl", 0), [100] * 10)
    assert ours.cells["cifar100_10:avg:delta"].value == pytest.approx(metrics.cil_average(seen) - 85.21)
    assert ours.cells["cifar100_10:last:delta"].value == pytest.approx(metrics.cil_last(seen) - 77.52)
    assert {r.head[0] for r in table.rows if r.published} == {"moe_adapters · MoE-Adapters repo [code]",
                                                              "gift · GIFT CVPR'25 [secondary]"}


def test_malformed_data_file_is_a_one_line_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rows:\n  - {method: zscl, benchmark: mtil_order1, values: {avg: 1}, source: x, quality: great,"
                   " citation: y}\n")
    with pytest.raises(UserError, match="quality 'great' is not one of code, paper, secondary") as err:
        load_published_file(bad)
    assert "\n" not in str(err.value)


def test_medxtreme_table_has_acc_auc_bwt_and_deltas(tmp_path: Path) -> None:
    tasks = [f"organ{i}" for i in range(5)]
    acc = synthetic_matrix("mtil", 5, "finetune", 0)
    auc = np.clip(acc + 20, 0, 100)
    write_run(tmp_path, "medxtreme_order1", "finetune", 0, acc, "medxtreme", tasks, auc=auc)
    results = load_results(tmp_path)
    (table,) = leaderboards(results, load_published(default_dirs(tmp_path), results.benchmarks()))
    assert [c.label for c in table.columns if c.kind == "value"] == ["ACC", "AUC", "BWT"]
    ours = next(r for r in table.rows if not r.published).cells
    assert ours["medxtreme_order1:acc"].value == pytest.approx(metrics.last(acc))
    assert ours["medxtreme_order1:auc"].value == pytest.approx(metrics.last(auc))
    assert ours["medxtreme_order1:bwt:delta"].value == pytest.approx(metrics.backward_transfer(acc) + 15.1)
    zeroshot = next(r for r in table.rows if r.method == "zeroshot").cells
    assert zeroshot["medxtreme_order1:bwt"].kind == "blank"  # the paper leaves it empty: not 0
