"""Few-shot training sets: k images per class, drawn once with a fixed seed, class-balanced.

Few-shot MTIL (MoE-Adapters, ``mtil/src/models/finetune.py:39-64``: the first ``--few_shot`` images of each class
met in the shuffled train loader) and X-TAIL (RAIL, CoOp's ``generate_fewshot_dataset``,
``scenario_datasets/utils.py:308-349``: ``random.sample(items, num_shots)`` per class) both train on k images per
class. Here the draw depends on ``(shot_seed, task index)`` only — never on the run seed — so every method and
every seed of a table trains on the same images. Deviation from CoOp: a class with fewer than k images keeps all
of them instead of repeating some (``random.choices``); MTIL and the world have at least k everywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from clbench.benchmark import Benchmark


def sample_indices(targets: Sequence[int], shots: int, seed: int) -> list[int]:
    """Indices of ``shots`` items per class (all of a class's items when it has fewer), in dataset order."""
    if shots <= 0:
        raise ValueError(f"shots per class must be positive, got {shots}")
    labels = np.asarray([int(t) for t in targets], dtype=np.int64)
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        chosen.append(members if len(members) <= shots else rng.choice(members, size=shots, replace=False))
    return sorted(int(i) for i in np.concatenate(chosen)) if chosen else []


class FewShotSubset(Dataset):
    """The chosen items of ``base``, with ``targets`` for Avalanche and ``indices`` into ``base``."""

    def __init__(self, base: Any, indices: Sequence[int]) -> None:
        base_targets = base.targets
        self.base = base
        self.indices = [int(i) for i in indices]
        self.targets = [int(base_targets[i]) for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.base[self.indices[index]]


def few_shot(bench: Benchmark, shots: int, seed: int, name: str | None = None, protocol: str | None = None,
             ) -> Benchmark:
    """``bench`` with each task's training set cut to ``shots`` images per class (test sets untouched).

    Task ``i`` draws with seed ``seed * 1000 + i``: tasks draw independently, the same way in every run.
    """
    train = [FewShotSubset(ds, sample_indices(ds.targets, shots, seed * 1000 + i))  # type: ignore[attr-defined]
             for i, ds in enumerate(bench.train_datasets)]
    info = {**bench.info, "shots": shots, "shot_seed": seed}
    return dataclasses.replace(bench, name=name or bench.name, protocol=protocol or bench.protocol,
                               train_datasets=train, scenario=None, info=info)
