"""``smoke``: an in-memory benchmark of random tensors (3 tasks), for tests and engine checks only.

Each class is a fixed random pattern plus noise, so a model can learn it; nothing is read from disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from clbench.benchmark import Benchmark, BenchmarkDef, TaskSpec, Transforms, load_defaults
from clbench.registry import BENCHMARKS

TASKS = (
    ("alpha", ("red", "green", "blue")),
    ("beta", ("circle", "square", "triangle", "star")),
    ("gamma", ("one", "two")),
)
TEMPLATES = ("a photo of {}.", "an image of {}.", "a picture of {}.")


@dataclass
class SmokeOptions:
    train_per_class: int = 24
    test_per_class: int = 8
    noise: float = 0.5
    data_seed: int = 0  # the data never depends on the run seed


class PatternDataset(Dataset):
    """Noisy copies of per-class patterns; ``targets`` lets Avalanche index the labels."""

    def __init__(self, patterns: torch.Tensor, per_class: int, noise: float, generator: torch.Generator) -> None:
        n_classes = patterns.shape[0]
        self.targets = [c for c in range(n_classes) for _ in range(per_class)]
        base = patterns[torch.tensor(self.targets)]
        self.images = base + noise * torch.randn(base.shape, generator=generator)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], self.targets[index]


def build(options: SmokeOptions, transforms: Transforms) -> Benchmark:
    g = torch.Generator().manual_seed(options.data_seed)
    size = transforms.image_size
    tasks, train, test = [], [], []
    for name, classes in TASKS:
        patterns = torch.randn(len(classes), 3, size, size, generator=g)
        tasks.append(TaskSpec(name=name, class_names=classes, templates=TEMPLATES))
        train.append(PatternDataset(patterns, options.train_per_class, options.noise, g))
        test.append(PatternDataset(patterns, options.test_per_class, options.noise, g))
    return Benchmark(name="smoke", protocol="mtil", tasks=tasks, train_datasets=train, test_datasets=test)


BENCHMARKS.register("smoke")(BenchmarkDef(
    name="smoke",
    summary="3 tasks of random-pattern images (3/4/2 classes), random-init tiny CLIP; for tests only [mtil]",
    protocol="mtil",
    options=SmokeOptions,
    build=build,
    defaults=load_defaults(Path(__file__).with_suffix(".yaml"), "smoke"),
))
