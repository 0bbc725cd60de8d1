"""Synthetic data as executor jobs: ``clbench synth --executor ... --shards n`` makes the same cache as one
process, and a sweep generates GIFT's images in shard jobs before its runs, which then generate nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli_runner import invoke
from tests.test_cli import assert_one_line_error

SMOKE_GIFT = ["--set", "gift.synth_backend=procedural", "--set", "gift.synth_images_per_task=16",
              "--set", "gift.synth_generation_batch=8"]  # 6 calls of 8 images: every shard has some to make
SUITE = """
methods: [finetune, gift]
benchmarks: [smoke]
seeds: [0, 1]
config:
  train: {iterations: 4, warmup: 1}
  methods: {gift: {synth_backend: procedural, synth_images_per_task: 16, synth_generation_batch: 8}}
"""


def cache_files(root: Path) -> dict[str, str]:
    """relative path -> md5 of every image and manifest of a synthetic cache."""
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in (".png", ".json", ".dropped")
            and p.name != "generator.json"}


def test_executor_shards_make_the_same_cache_as_one_process(tmp_path, capsys):
    one = invoke(capsys, "synth", "--benchmark", "smoke", *SMOKE_GIFT, "--cache", str(tmp_path / "one"), "--quiet")
    assert one.returncode == 0, one.stderr
    sharded = invoke(capsys, "synth", "--benchmark", "smoke", *SMOKE_GIFT, "--cache", str(tmp_path / "three"),
                     "--executor", "local", "--shards", "3", "--quiet")
    assert sharded.returncode == 0, sharded.stderr
    assert "3 shard jobs on local" in sharded.stdout and "manifest " in sharded.stdout, sharded.stdout
    a, b = cache_files(tmp_path / "one"), cache_files(tmp_path / "three")
    assert a == b and sum(k.endswith(".png") for k in a) > 16 and any("manifests" in k for k in a)
    again = invoke(capsys, "synth", "--benchmark", "smoke", *SMOKE_GIFT, "--cache", str(tmp_path / "three"),
                   "--executor", "local", "--shards", "3", "--quiet")
    assert again.returncode == 0 and "complete already" in again.stdout, again.stdout


@pytest.mark.parametrize("args, message", [
    (["--shards", "2"], "--shards and --jobs go with --executor"),
    (["--executor", "local", "--shard", "1/2"], "with --executor give --shards n"),
    (["--executor", "nope"], "unknown executor 'nope'"),
    (["--executor", "local", "--shards", "0"], "--shards and --jobs must be at least 1"),
    (["--executor", "ray", "--cache", "relative/cache"], "is relative: with --executor ray"),
])
def test_bad_executor_input_is_one_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = invoke(capsys, "synth", "--benchmark", "smoke", *SMOKE_GIFT, *args, "--quiet")
    assert_one_line_error(out, message)
    assert not (tmp_path / "relative").exists()


def generated_by_runs(root: Path) -> dict[str, int]:
    """run folder -> images its own run generated (run.json's cost)."""
    return {str(p.parent.relative_to(root)): json.loads(p.read_text())["cost"]["phases"]["generation"]["images"]
            for p in sorted(root.rglob("run.json"))}


def test_sweep_generates_before_its_runs_which_then_generate_nothing(tmp_path, capsys, monkeypatch):
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE)
    monkeypatch.setenv("CLBENCH_SYNTH_CACHE", str(tmp_path / "cache"))
    dry = invoke(capsys, "sweep", str(suite), "--out", str(tmp_path / "r"), "--synth-shards", "2", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "first: synthetic data of smoke in 2 shard job(s)" in dry.stdout, dry.stdout
    assert not (tmp_path / "cache").exists()  # a dry run generates nothing
    out = invoke(capsys, "sweep", str(suite), "--out", str(tmp_path / "r"), "--synth-shards", "2", "--no-report")
    assert out.returncode == 0, out.stderr
    assert "after 2 synthetic-data shard job(s)" in out.stderr, out.stderr
    gift = {k: v for k, v in generated_by_runs(tmp_path / "r").items() if "/gift/" in k}
    assert len(gift) == 2 and set(gift.values()) == {0}, gift  # both seeds found the shard jobs' images

    # the same suite where the runs generate (--synth-shards 0): same images, same matrices
    monkeypatch.setenv("CLBENCH_SYNTH_CACHE", str(tmp_path / "cache0"))
    ref = invoke(capsys, "sweep", str(suite), "--out", str(tmp_path / "r0"), "--synth-shards", "0", "--no-report")
    assert ref.returncode == 0, ref.stderr
    made = {k: v for k, v in generated_by_runs(tmp_path / "r0").items() if "/gift/" in k}
    assert sorted(made.values())[-1] > 0, made  # here a run made them
    assert cache_files(tmp_path / "cache") == cache_files(tmp_path / "cache0")
    rows = {str(p.parent.relative_to(tmp_path / "r")): json.loads(p.read_text())["rows"]
            for p in (tmp_path / "r").rglob("matrix.json")}
    rows0 = {str(p.parent.relative_to(tmp_path / "r0")): json.loads(p.read_text())["rows"]
             for p in (tmp_path / "r0").rglob("matrix.json")}
    assert rows == rows0 and len(rows) == 4


def test_a_plan_that_cannot_be_made_here_is_left_to_the_runs(tmp_path, capsys):
    """A benchmark whose data are not on the sweep's machine (only on the compute nodes): the dry run still
    lists its runs and says that they will make the synthetic data themselves."""
    suite = tmp_path / "s.yaml"
    suite.write_text(f"methods: [gift]\nbenchmarks: [mtil_order1]\nseeds: [0]\n"
                     f"config: {{benchmark: {{root: {tmp_path / 'no-data'}}}}}\n")
    out = invoke(capsys, "sweep", str(suite), "--out", str(tmp_path / "r"), "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "synthetic data of mtil_order1 not planned here" in out.stderr and "its runs make it" in out.stderr
    assert "mtil_order1" in out.stdout and "gift" in out.stdout and "first: synthetic" not in out.stdout


def test_a_failed_shard_is_a_warning_and_the_run_makes_what_it_left_out(tmp_path, capsys, monkeypatch):
    """Shard 1 of 2 dies: the sweep says so in one line and goes on; the run finds shard 0's images, makes the
    rest itself, and its cache and matrix equal those of a sweep whose run generated everything."""
    import clbench.synth.jobs as jobs

    real = jobs.generate_shard

    def shard_one_dies(gen: jobs.Generation, shard: tuple[int, int], say: Any = print) -> bool:
        if shard == (1, 2):
            raise RuntimeError("CUDA error: out of memory (injected)")
        return real(gen, shard, say)

    monkeypatch.setattr(jobs, "generate_shard", shard_one_dies)
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE.replace("[finetune, gift]", "[gift]").replace("[0, 1]", "[0]"))
    monkeypatch.setenv("CLBENCH_SYNTH_CACHE", str(tmp_path / "cache"))
    out = invoke(capsys, "sweep", str(suite), "--out", str(tmp_path / "r"), "--synth-shards", "2", "--no-report")
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if line.startswith("WARNING")]
    assert warnings == ["WARNING synth smoke 1/2 failed: RuntimeError: CUDA error: out of memory (injected); "
                        "the runs make the images it left out"], out.stderr
    (made,) = generated_by_runs(tmp_path / "r").values()

    monkeypatch.setenv("CLBENCH_SYNTH_CACHE", str(tmp_path / "cache0"))
    ref = invoke(capsys, "sweep", str(suite), "--out", str(tmp_path / "r0"), "--synth-shards", "0", "--no-report")
    assert ref.returncode == 0, ref.stderr
    (all_images,) = generated_by_runs(tmp_path / "r0").values()
    assert 0 < made < all_images, (made, all_images)  # shard 0's images were kept, the rest made by the run
    assert cache_files(tmp_path / "cache") == cache_files(tmp_path / "cache0")
    rows = [json.loads(p.read_text())["rows"] for root in ("r", "r0") for p in (tmp_path / root).rglob("matrix.json")]
    assert len(rows) == 2 and rows[0] == rows[1]


def test_no_more_shards_than_generator_calls(tmp_path, capsys):
    """Shards split a plan by generator call: the procedural generator makes the smoke plan (48 images) in one
    call of up to 1,000, so 3 shards asked are 1 job, which makes the whole plan."""
    one_call = SMOKE_GIFT[:4]  # without the 8-image generation batch
    out = invoke(capsys, "synth", "--benchmark", "smoke", *one_call, "--cache", str(tmp_path / "c"),
                 "--executor", "local", "--shards", "3", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "1 shard jobs on local (not 3: the plan is 1 generator call(s))" in out.stdout, out.stdout
    manifest = next((tmp_path / "c").rglob("manifests/*.json"))
    assert json.loads(manifest.read_text())["num_images"] == 48
