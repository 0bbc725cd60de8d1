"""Leaderboard numbers against the stored matrices, ± conventions, bold, pending cells, LaTeX and CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from clbench import metrics
from clbench.report.collect import load_results
from clbench.report.render import to_csv, to_latex, to_markdown
from clbench.report.tables import Table, leaderboards
from clbench.store import find_runs

BENCH = "shapes_mtil_order1"


def stored(root: Path, benchmark: str, method: str) -> list[np.ndarray]:
    """The accuracy matrices as written in the run store, read back independently of the reporter."""
    runs = [r for r in find_runs(root) if r.read_run()["benchmark"] == benchmark
            and r.read_run()["method"] == method]
    return [r.read_matrix().array() for r in sorted(runs, key=lambda r: r.read_run()["seed"])]


def table_of(tables: list[Table], protocol: str) -> Table:
    return next(t for t in tables if t.protocol == protocol)


def row(table: Table, method: str, metric: str = "") -> dict:
    return next(r for r in table.rows if r.method == method and r.metric == metric and not r.published).cells


@pytest.fixture
def tables(results_dir: Path) -> list[Table]:
    return leaderboards(load_results(results_dir))


def test_mtil_cells_match_metrics_of_the_stored_matrices(results_dir: Path, tables: list[Table]) -> None:
    table = table_of(tables, "mtil")
    mats = stored(results_dir, BENCH, "finetune")
    assert len(mats) == 3
    tasks = load_results(results_dir).tasks(BENCH)
    for name, overall, per_task in (("transfer", metrics.transfer, metrics.transfer_per_task),
                                    ("avg", metrics.average, metrics.average_per_task),
                                    ("last", metrics.last, metrics.last_per_task)):
        cells = row(table, "finetune", name)
        expected = [overall(a) for a in mats]
        assert cells["average"].value == pytest.approx(np.mean(expected))
        assert cells["average"].std == pytest.approx(np.std(expected, ddof=1))  # sample std, stated in notes
        assert cells["average"].n == 3
        for j, task in enumerate(tasks):
            cell = cells[f"task:{task}"]
            if name == "transfer" and j == 0:
                assert cell.kind == "blank"  # no Transfer for the first dataset, as in ZSCL's Table 3
            else:
                assert cell.value == pytest.approx(np.mean([per_task(a)[j] for a in mats]))
    assert any("ddof=1" in note for note in table.notes)


def test_one_seed_has_no_plus_minus_three_seeds_do(tables: list[Table]) -> None:
    table = table_of(tables, "mtil")
    md = to_markdown(table)
    zscl = row(table, "zscl", "avg")
    assert zscl["average"].std is None and zscl["seeds"].text == "1"
    finetune = row(table, "finetune", "avg")
    assert finetune["seeds"].text == "3"
    zscl_line = next(ln for ln in md.splitlines() if ln.startswith("| zscl |"))
    assert "±" not in zscl_line
    mean, std = finetune["average"].value, finetune["average"].std
    assert f"{mean:.1f} ± {std:.1f}" in md


def test_best_value_per_column_is_bold_and_zero_shot_is_not_ranked(tables: list[Table]) -> None:
    table = table_of(tables, "mtil")
    for metric in ("transfer", "avg", "last"):
        for col in (c for c in table.columns if c.kind == "value"):
            ranked = [r.cells[col.key] for r in table.rows
                      if r.metric == metric and r.method != "zeroshot" and r.cells[col.key].kind == "value"]
            if not ranked:
                continue  # Transfer of the first dataset: blank for every method
            best = max(round(c.value, 1) for c in ranked)
            for c in ranked:
                assert c.bold == (round(c.value, 1) == best), (metric, col.key)
    assert not any(c.bold for r in table.rows if r.method == "zeroshot" for c in r.cells.values())
    best_avg = max((r for r in table.rows if r.metric == "avg" and r.method != "zeroshot"),
                   key=lambda r: r.cells["average"].value or -1)
    md = to_markdown(table)
    assert f"**{best_avg.cells['average'].value:.1f}**" in md
    assert rf"\textbf{{{best_avg.cells['average'].value:.1f}}}" in to_latex(table)


def test_incomplete_run_shows_pending_never_zero(results_dir: Path, tables: list[Table]) -> None:
    table = table_of(tables, "mtil")
    (partial,) = stored(results_dir, BENCH, "lwf")
    assert np.isnan(partial[3:]).all()  # 3 of 8 rows written
    transfer = row(table, "lwf", "transfer")
    tasks = load_results(results_dir).tasks(BENCH)
    for j, task in enumerate(tasks[1:], start=1):
        cell = transfer[f"task:{task}"]
        if j <= 3:  # Transfer of task j needs rows 0..j-1 only: known already
            assert cell.value == pytest.approx(np.mean(partial[:j, j]))
        else:
            assert cell.kind == "pending"
    for metric in ("transfer", "avg", "last"):
        assert row(table, "lwf", metric)["average"].kind == "pending"
    md_lines = [ln for ln in to_markdown(table).splitlines() if ln.startswith("| lwf |")
                or (ln.startswith("|  |") and "pending" in ln)]
    assert md_lines and all(" 0.0 " not in ln for ln in md_lines)
    assert "pending" in md_lines[0]
    assert any("lwf seed 0 (3/8 tasks)" in n for n in table.notes)
    assert r"\textit{pending}" in to_latex(table)


def test_cil_table_avg_and_last_per_setting(results_dir: Path, tables: list[Table]) -> None:
    table = table_of(tables, "cil")
    assert table.benchmarks == ["shapes_cil_5"]
    assert [c.group for c in table.columns if c.kind == "value"] == ["5 steps", "5 steps"]
    (a,) = stored(results_dir, "shapes_cil_5", "zscl")
    seen = metrics.seen_accuracy(a, [100] * 5)
    cells = row(table, "zscl")
    assert cells["shapes_cil_5:avg"].value == pytest.approx(metrics.cil_average(seen))
    assert cells["shapes_cil_5:last"].value == pytest.approx(metrics.cil_last(seen))


def test_cil_settings_of_one_family_share_a_table(tmp_path: Path) -> None:
    from tests.report.report_fixtures import synthetic_matrix, write_run

    for steps in (10, 5):
        tasks = [f"t{i}" for i in range(steps)]
        write_run(tmp_path, f"toy_{steps}", "finetune", 0, synthetic_matrix("cil", steps, "finetune", 0), "cil",
                  tasks)
    (table,) = leaderboards(load_results(tmp_path))
    assert table.benchmarks == ["toy_5", "toy_10"]  # settings in numeric order
    assert [c.group for c in table.columns if c.kind == "value"] == ["5 steps"] * 2 + ["10 steps"] * 2
    assert "\\multicolumn{2}{c}{5 steps}" in to_latex(table)


def test_xtail_runs_get_a_per_dataset_transfer_avg_last_table(tmp_path: Path) -> None:
    from tests.report.report_fixtures import write_run

    tasks = ["a", "b", "c"]
    a = np.array([[50.0, 10.0, 20.0], [40.0, 60.0, 30.0], [35.0, 55.0, 70.0]])
    write_run(tmp_path, "toy_xtail", "rail", 0, a, "xtail", tasks)
    (table,) = leaderboards(load_results(tmp_path))
    assert table.protocol == "xtail" and "union of all classes" in table.title
    cells = row(table, "rail", "transfer")
    assert cells["task:b"].value == pytest.approx(10.0) and cells["task:c"].value == pytest.approx(25.0)
    assert cells["average"].value == pytest.approx(metrics.transfer(a))
    assert row(table, "rail", "last")["average"].value == pytest.approx(metrics.last(a))


def test_latex_escapes_names_and_uses_booktabs(tables: list[Table]) -> None:
    tex = to_latex(table_of(tables, "mtil"))
    assert r"\toprule" in tex and r"\bottomrule" in tex
    assert r"shapes\_mtil\_order1" in tex
    assert "$\\pm$" in tex


def test_csv_is_tidy_and_full_precision(results_dir: Path) -> None:
    results = load_results(results_dir)
    rows = list(csv.DictReader(io.StringIO(to_csv(results))))
    mats = stored(results_dir, BENCH, "finetune")
    line = next(r for r in rows if r["benchmark"] == BENCH and r["method"] == "finetune" and r["metric"] == "last"
                and r["task"] == "")
    assert float(line["mean"]) == pytest.approx(np.mean([metrics.last(a) for a in mats]), abs=1e-12)
    assert float(line["std"]) == pytest.approx(np.std([metrics.last(a) for a in mats], ddof=1), abs=1e-12)
    assert line["n_seeds"] == "3" and line["status"] == "ok"
    pending = [r for r in rows if r["method"] == "lwf" and r["task"] == ""]
    assert pending and all(r["status"] == "pending" and r["mean"] == "" for r in pending)
