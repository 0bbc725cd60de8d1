"""The ``synthetic_data`` service: batches, and the provider over the cache (reuse, repair of damaged files)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from clbench.benchmark import Benchmark, TaskSpec
from clbench.methods.gift import GiftConfig
from clbench.models import load_model
from clbench.registry import BENCHMARKS
from clbench.services import ServiceRequest, provide
from clbench.synthetic_data import SyntheticData, SyntheticTask, base_vocabulary, options_from, plan_for


def test_batches_cover_each_epoch_and_follow_the_seed() -> None:
    prompts = ["a", "b", "a", "c", "b"]
    task = SyntheticTask(torch.arange(5, dtype=torch.float32).view(5, 1, 1, 1).expand(5, 3, 2, 2), prompts)
    assert task.prompts == ("a", "b", "c") and task.prompt_ids.tolist() == [0, 1, 0, 2, 1]
    data = SyntheticData.from_tasks([task], batch_size=2, seed=0)
    it = data.batches(0)
    epoch = [next(it) for _ in range(3)]
    assert [len(b.indices) for b in epoch] == [2, 2, 1]  # the short last batch is kept
    assert sorted(i for b in epoch for i in b.indices.tolist()) == [0, 1, 2, 3, 4]
    for b in epoch:
        assert list(b.prompts) == [prompts[i] for i in b.indices.tolist()]
        assert torch.equal(b.images[:, 0, 0, 0], b.indices.float())
    again = SyntheticData.from_tasks([task], batch_size=2, seed=0).batches(0)
    assert [next(again).indices.tolist() for _ in range(3)] == [b.indices.tolist() for b in epoch]
    other = SyntheticData.from_tasks([task], batch_size=5, seed=1).batches(0)
    assert next(other).indices.tolist() != torch.cat([b.indices for b in epoch]).tolist()


def test_options_come_from_the_method_config() -> None:
    options = options_from(GiftConfig(synth_steps=25, synth_images_per_task=10), seed=3)
    assert (options.steps, options.images_per_task, options.seed, options.guidance) == (25, 10, 3, 7.5)


def test_benchmark_vocabulary_hint() -> None:
    spec = TaskSpec("shapes", ("circle", "square"), ("a photo of a {}.",))
    bench = Benchmark("w", "mtil", [spec], [[]], [[]],
                      info={"synthetic_vocabulary": ("world", ("red circle", "blue star"), "a {}")})
    assert base_vocabulary(bench).class_names == ("red circle", "blue star")
    plan = plan_for(bench, options_from(GiftConfig(synth_images_per_task=3)))
    assert {e.source for e in plan.entries[0]} == {"world"}


def test_provider_serves_the_cache_and_repairs_damage(tiny_pipeline_dir: Path, reference_cache: Path,
                                                      tmp_path: Path) -> None:
    root = tmp_path / "cache"
    shutil.copytree(reference_cache, root)
    loaded = load_model("clbench-tiny", None)
    bench = BENCHMARKS.get("smoke").build(BENCHMARKS.get("smoke").options(), loaded.transforms)
    config = GiftConfig(synth_backend="diffusers", synth_model=str(tiny_pipeline_dir), synth_steps=2, synth_size=64,
                        synth_images_per_task=4, synth_generation_batch=2, synth_cache=str(root))
    request = ServiceRequest(name="synthetic_data", method="gift", method_config=config, benchmark=bench,
                             transforms=loaded.transforms, device=torch.device("cpu"), seed=0, batch_size=3)
    data: SyntheticData = provide(request)
    task = data.task(1)
    assert task.images.shape == (4, 3, 32, 32) and len(task.prompt_ids) == 4
    batch = next(data.batches(1))
    assert batch.images.dtype == torch.float32 and len(batch.prompts) == 3
    [image] = [p for p in root.glob("*/images/*/*.png")][:1]
    image.write_bytes(image.read_bytes()[:50])  # damaged after the manifest was written
    data = provide(request)
    assert all(len(data.task(i)) == 4 for i in range(3))  # regenerated on the fly
    assert image.stat().st_size > 50


def test_offline_world_uses_the_procedural_backend(tmp_path: Path) -> None:
    if "shapes_mtil_order1" not in BENCHMARKS.names():
        pytest.skip("the offline world's benchmarks are not installed")
    loaded = load_model("clbench-tiny", None)
    bench_def = BENCHMARKS.get("shapes_mtil_order1")
    options = dataclasses.replace(bench_def.options(), train_per_class=2, test_per_class=2)
    bench = bench_def.build(options, loaded.transforms)
    config = GiftConfig(synth_images_per_task=16, synth_cache=str(tmp_path))
    request = ServiceRequest(name="synthetic_data", method="gift", method_config=config, benchmark=bench,
                             transforms=loaded.transforms, device=torch.device("cpu"), seed=0, batch_size=8)
    data: SyntheticData = provide(request)
    [folder] = tmp_path.iterdir()
    assert folder.name.startswith("procedural-")
    assert data.generated_images == 16 * len(bench.tasks)  # the run's cost accounting: all generated here
    assert provide(request).generated_images == 0  # the next run finds them in the cache
    first, third = data.task(0), data.task(2)
    assert first.images.shape == (16, 3, 32, 32) and len(third) == 16
    base = set(base_vocabulary(bench).class_names)
    assert set(first.classes) <= base  # task 1 draws from the pre-training vocabulary only
    assert set(third.classes) <= base | set(bench.tasks[0].class_names) | set(bench.tasks[1].class_names)
