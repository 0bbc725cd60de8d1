"""Suites: shipped grids load and expand; bad suites fail on one line listing every problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clbench.registry import BENCHMARKS, METHODS
from clbench.suite import load_suite, shipped_dir, shipped_names
from tests.cli_runner import invoke
from tests.test_cli import assert_one_line_error

PAPER_SUITES = {"zscl_mtil", "gift_mtil", "gift_cil", "hieramed", "medxtreme", "world", "smoke"}


def test_shipped_suites_include_the_paper_tables():
    assert PAPER_SUITES <= set(shipped_names())


@pytest.mark.parametrize("name", sorted(PAPER_SUITES))
def test_shipped_suite_expands_to_its_full_grid(name: str):
    raw = yaml.safe_load((shipped_dir() / f"{name}.yaml").read_text())
    suite = load_suite(name)
    want = {(b, m, s) for b in raw["benchmarks"] for m in raw["methods"] for s in raw["seeds"]}
    assert {(c.benchmark, c.method, c.seed) for c in suite.cells} == want
    assert len({c.config_hash for c in suite.cells}) == len(suite.cells)
    assert suite.reproduces


def test_world_suite_is_every_method_on_the_offline_world_with_three_seeds():
    suite = load_suite("world")
    # every method but rail_dual, whose kernel over the world's 24,000 training images is refused (max_samples)
    assert set(METHODS.names()) - set(suite.methods) == {"rail_dual"}
    assert suite.seeds == [0, 1, 2]
    assert all(BENCHMARKS.get(b).defaults["model"]["pretrained"] == "bundled:world" for b in suite.benchmarks)


def test_suite_model_applies_to_every_cell():
    suite = load_suite("zscl_mtil")
    assert {(c.config.model.name, c.config.model.pretrained) for c in suite.cells} == {("ViT-B-16", "openai")}


def test_list_suites_names_each_with_its_table(capsys):
    out = invoke(capsys, "list", "suites")
    assert out.returncode == 0
    lines = out.stdout.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == shipped_names()
    assert any("Table 3" in ln for ln in lines if ln.startswith("zscl_mtil"))


def write_suite(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return path


def test_user_suite_cell_overrides_and_exclusions(tmp_path):
    path = write_suite(tmp_path, """
methods: [finetune, zscl]
benchmarks: [smoke]
seeds: [0, 1]
config: {train: {iterations: 4}}
cells:
  - {method: zscl, seed: 1, config: {train: {iterations: 7}, zscl: {image_weight: 3.0}}}
  - {method: finetune, seed: 1, exclude: true}
""")
    suite = load_suite(str(path))
    cells = {(c.method, c.seed): c.config for c in suite.cells}
    assert set(cells) == {("finetune", 0), ("zscl", 0), ("zscl", 1)}
    assert cells[("zscl", 1)].train.iterations == 7 and cells[("zscl", 1)].method_config.image_weight == 3.0
    assert cells[("zscl", 0)].train.iterations == 4
    assert cells[("zscl", 0)].method_config.image_weight != 3.0
    assert cells[("finetune", 0)].train.iterations == 4


def test_identical_cells_collapse_on_the_config_hash(tmp_path):
    path = write_suite(tmp_path, "methods: [finetune]\nbenchmarks: [smoke, smoke]\nseeds: [0, 0, 1]\n")
    suite = load_suite(str(path))
    assert [(c.benchmark, c.seed) for c in suite.cells] == [("smoke", 0), ("smoke", 1)]
    assert suite.duplicates == 4


def test_bad_suite_lists_every_problem_on_one_line(capsys, tmp_path):
    path = write_suite(tmp_path, """
methods: [finetun, zscl, nosuch]
benchmarks: [smok]
seeds: [0]
colour: blue
""")
    out = invoke(capsys, "sweep", str(path), "--dry-run", "--out", str(tmp_path / "r"))
    assert_one_line_error(out, "4 problems", "unknown method 'finetun'", "did you mean 'finetune'",
                          "unknown method 'nosuch'", "unknown benchmark 'smok'", "unknown key 'colour'")
    assert not (tmp_path / "r").exists()


def test_bad_config_key_in_one_cell_names_the_cell(capsys, tmp_path):
    path = write_suite(tmp_path, """
methods: [finetune, zscl]
benchmarks: [smoke]
cells:
  - {method: zscl, config: {zscl: {image_weigh: 1.0}}}
  - {method: finetune, config: {train: {lrr: 1.0}}}
""")
    out = invoke(capsys, "sweep", str(path), "--dry-run")
    assert_one_line_error(out, "2 problems", "smoke/zscl/seed 0: unknown config key zscl.image_weigh",
                          "smoke/finetune/seed 0: unknown config key train.lrr")


def test_unknown_suite_name_lists_the_shipped_ones(capsys):
    out = invoke(capsys, "sweep", "wrold", "--dry-run")
    assert_one_line_error(out, "unknown suite 'wrold'", "did you mean 'world'", "gift_mtil")


def test_missing_suite_file(capsys, tmp_path):
    out = invoke(capsys, "sweep", str(tmp_path / "nope.yaml"), "--dry-run")
    assert_one_line_error(out, "does not exist")
