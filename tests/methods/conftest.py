"""Fixtures for method tests: a 2-task cut of the ``smoke`` benchmark and a tiny reference corpus on disk."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clbench.benchmark import Benchmark, BenchmarkDef, TaskSpec
from clbench.context import MethodContext, freeze
from clbench.method import Batch, TaskState
from clbench.models import load_model
from clbench.registry import BENCHMARKS


@pytest.fixture(scope="session")
def smoke_two_tasks() -> BenchmarkDef:
    """``smoke`` with its first two tasks only (same data, same defaults)."""
    smoke: BenchmarkDef = BENCHMARKS.get("smoke")
    built: dict[str, Benchmark] = {}

    def build(options, transforms) -> Benchmark:  # noqa: ANN001
        # built once per options: the engine only reads it, and the Avalanche stream costs seconds to build
        key = repr(options)
        if key not in built:
            full = smoke.build(options, transforms)
            built[key] = Benchmark(name=full.name, protocol=full.protocol, tasks=full.tasks[:2],
                                       train_datasets=full.train_datasets[:2],
                                       test_datasets=full.test_datasets[:2], info=full.info)
        return built[key]

    return dataclasses.replace(smoke, build=build)


@pytest.fixture(scope="session")
def reference_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A folder of 12 small PNGs (in nested folders, with a non-image file) and a caption file."""
    root = tmp_path_factory.mktemp("reference")
    rng = np.random.default_rng(0)
    for i in range(12):
        sub = root / "images" / f"part{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(sub / f"img{i}.png")
    (root / "images" / "notes.txt").write_text("not an image\n")
    captions = root / "captions.txt"
    captions.write_text("a red circle\n\nthree blue squares on a dark background\na small striped star\n"
                        "two green triangles\n")
    return root / "images", captions


@dataclasses.dataclass
class Tiny:
    """A random-init tiny CLIP in a :class:`MethodContext`, as the engine would hand it to a method."""

    ctx: MethodContext
    initial: torch.nn.Module


@pytest.fixture
def tiny() -> Tiny:
    torch.manual_seed(0)
    loaded = load_model("clbench-tiny", None, "cpu")
    initial = freeze(copy.deepcopy(loaded.model))
    ctx = MethodContext(loaded.model, loaded.tokenizer, torch.device("cpu"), label_smoothing=0.2,
                        initial_model=lambda: initial)
    return Tiny(ctx, initial)


def make_task(index: int, names: tuple[str, ...], steps: int = 4, num_tasks: int = 2) -> TaskState:
    spec = TaskSpec(name=f"task{index}", class_names=names, templates=("a photo of a {}.", "art of a {}."))
    return TaskState(index=index, spec=spec, num_tasks=num_tasks, steps=steps, train_class_names=names,
                     seen_class_names=names)


def make_batch(num: int, classes: int, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(num, 3, 32, 32, generator=g), torch.arange(num) % classes)


def fixed_batches(batches: list[Batch]) -> Callable[[int | None], Iterator[Batch]]:
    """A stand-in for ``ctx.task_batches``: the given batches in order, at most ``max_batches``."""
    return lambda max_batches=None: iter(batches[:max_batches])
