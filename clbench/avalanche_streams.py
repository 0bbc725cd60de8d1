"""Avalanche streams from clbench's datasets (imported lazily: Avalanche takes seconds to import).

Pitfalls handled here (avalanche-lib 0.6.0): ``class_incremental_benchmark(num_experiences=k)`` silently drops
leftover classes, so we always pass ``num_classes_per_exp`` and assert that every class is covered;
``classes_in_this_experience`` is an unordered set, so clbench keeps its own ordered class lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.utils.data import Dataset


def _targets(dataset: Dataset) -> list[int]:
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise TypeError(f"{type(dataset).__name__} needs a 'targets' attribute to enter an Avalanche stream")
    return [int(t) for t in targets]


def streams_from_datasets(train: Sequence[Dataset], test: Sequence[Dataset], protocol: str) -> Any:
    """One experience per dataset; task-incremental protocols get task label = experience index."""
    from avalanche.benchmarks import task_incremental_benchmark
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
    from avalanche.benchmarks.utils import as_taskaware_classification_dataset

    for ds in (*train, *test):
        _targets(ds)
    scenario = benchmark_from_datasets(
        train=[as_taskaware_classification_dataset(d) for d in train],
        test=[as_taskaware_classification_dataset(d) for d in test],
    )
    return scenario if protocol == "cil" else task_incremental_benchmark(scenario)


def class_incremental_stream(train: Dataset, test: Dataset, classes_per_task: Sequence[int]) -> Any:
    """Split datasets whose labels are positions in the class order into contiguous class groups."""
    from avalanche.benchmarks import class_incremental_benchmark
    from avalanche.benchmarks.utils import as_classification_dataset

    n_classes = sum(classes_per_task)
    present = set(_targets(train))
    if present != set(range(n_classes)):
        raise ValueError(f"training labels must be exactly 0..{n_classes - 1}; got {len(present)} distinct labels")
    scenario = class_incremental_benchmark(
        {"train": as_classification_dataset(train), "test": as_classification_dataset(test)},
        class_order=list(range(n_classes)),
        num_classes_per_exp=list(classes_per_task),
    )
    offset = 0
    for exp, size in zip(scenario.train_stream, classes_per_task, strict=True):
        expected = set(range(offset, offset + size))
        if set(exp.classes_in_this_experience) != expected:
            raise AssertionError(f"experience {exp.current_experience} holds classes "
                                 f"{sorted(exp.classes_in_this_experience)}, expected {sorted(expected)}")
        offset += size
    if len(scenario.train_stream) != len(classes_per_task):
        raise AssertionError("Avalanche dropped classes: experience count differs from the class split")
    return scenario
