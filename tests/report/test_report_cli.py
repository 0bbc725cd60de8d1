"""``clbench report`` as a command: outputs, filters, one-line errors, old schemas, ``--diff``."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from clbench import metrics
from clbench.cli import main as clbench_main
from clbench.errors import UserError
from clbench.report.cli import main, register
from tests.report.report_fixtures import MTIL_TASKS, synthetic_matrix, write_run


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["report", *argv])


@pytest.mark.parametrize("kind", ["empty", "foreign", "missing"])
def test_no_runs_is_a_one_line_error_with_exit_2(tmp_path: Path, kind: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "results"
    if kind != "missing":
        target.mkdir()
    if kind == "foreign":  # some other project's output: files, but no run.json anywhere
        (target / "sub").mkdir()
        (target / "sub" / "metrics.json").write_text("{}")
        (target / "notes.txt").write_text("hello")
    assert clbench_main(["report", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("clbench: error:")
    assert {"empty": "is empty", "foreign": "no clbench runs", "missing": "does not exist"}[kind] in err


def test_writes_md_latex_csv_and_prints_the_markdown(results_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(parse(str(results_dir), "--format", "md,latex", "--format", "csv", "--out", str(out))) == 0
    printed = capsys.readouterr().out
    assert "### shapes_mtil_order1: Transfer / Avg / Last (%)" in printed
    assert sorted(p.name for p in out.iterdir()) == ["leaderboard.csv", "leaderboard.md", "leaderboard.tex"]
    assert (out / "leaderboard.md").read_text().count("###") == 2  # MTIL table + CIL table
    assert "\\begin{tabular}" in (out / "leaderboard.tex").read_text()


def test_default_out_is_inside_the_results_dir_and_filters_apply(results_dir: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(str(results_dir), "--format", "md", "--benchmark", "shapes_mtil_order1", "--methods", "zscl,lwf")
    assert main(args) == 0
    md = (results_dir / "report" / "leaderboard.md").read_text()
    assert "| zscl |" in md and "| lwf |" in md and "finetune" not in md and "shapes_cil" not in md
    # the report folder is not mistaken for runs on the next call
    assert main(parse(str(results_dir), "--format", "csv")) == 0


def test_unknown_method_names_what_is_present(results_dir: Path) -> None:
    with pytest.raises(UserError, match=r"no runs of method nope .*present: finetune, lwf, zeroshot, zscl"):
        main(parse(str(results_dir), "--methods", "nope"))


def test_published_without_matching_rows_says_so(results_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(parse(str(results_dir), "--format", "md", "--published")) == 0
    assert "no published numbers for these benchmarks" in capsys.readouterr().out


def test_older_schema_is_read_and_newer_is_skipped_with_a_note(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    a = synthetic_matrix("mtil", 8, "finetune", 0)
    old = write_run(tmp_path, "shapes_mtil_order1", "finetune", 0, a, "mtil", MTIL_TASKS, schema_version=0)
    (old.path / "matrix.json").unlink()  # schema 0 wrote matrix.csv only
    write_run(tmp_path, "shapes_mtil_order1", "zscl", 0, a, "mtil", MTIL_TASKS, schema_version=99)
    assert "schema_version" not in json.loads((old.path / "run.json").read_text())
    assert main(parse(str(tmp_path), "--format", "csv", "--out", str(tmp_path / "out"))) == 0
    printed = capsys.readouterr().out
    assert "written by a newer clbench (schema 99 > 1); upgrade clbench" in printed
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "leaderboard.csv").read_text())))
    assert {r["method"] for r in rows} == {"finetune"}
    last = next(r for r in rows if r["metric"] == "last" and r["task"] == "")
    assert float(last["mean"]) == pytest.approx(metrics.last(a))


def test_diff_compares_two_result_sets_metric_by_metric(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    before = synthetic_matrix("mtil", 8, "finetune", 0)
    after = before.copy()
    after[-1] += 2.0  # the change improved the final row by two points everywhere
    write_run(tmp_path / "a", "shapes_mtil_order1", "finetune", 0, before, "mtil", MTIL_TASKS)
    write_run(tmp_path / "b", "shapes_mtil_order1", "finetune", 0, after, "mtil", MTIL_TASKS)
    write_run(tmp_path / "b", "shapes_mtil_order1", "zscl", 0, after, "mtil", MTIL_TASKS)
    out = tmp_path / "diff"
    args = parse("--diff", str(tmp_path / "a"), str(tmp_path / "b"), "--format", "md,csv", "--out", str(out))
    assert main(args) == 0
    printed = capsys.readouterr().out
    last_line = next(ln for ln in printed.splitlines() if "| finetune | Last |" in ln)
    assert last_line.endswith("| +2.0 |") and "shapes_mtil_order1" in printed
    rows = list(csv.DictReader(io.StringIO((out / "diff.csv").read_text())))
    by = {(r["method"], r["metric"]): r for r in rows}
    assert float(by[("finetune", "last")]["delta"]) == pytest.approx(2.0)
    assert float(by[("finetune", "bwt")]["delta"]) == pytest.approx(2.0)
    assert float(by[("finetune", "transfer")]["delta"]) == pytest.approx(0.0)
    assert by[("zscl", "last")]["mean_a"] == "" and by[("zscl", "last")]["delta"] == ""
    assert np.isfinite(float(by[("zscl", "last")]["mean_b"]))
    assert "no runs" in printed
