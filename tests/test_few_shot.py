"""Few-shot training sets: k images per class, deterministic for a seed, class-balanced, test sets untouched."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils.data import TensorDataset

from clbench.benchmark import Benchmark, TaskSpec
from clbench.few_shot import FewShotSubset, few_shot, sample_indices


def _labelled(labels: list[int]) -> TensorDataset:
    ds = TensorDataset(torch.arange(len(labels)).float(), torch.tensor(labels))
    ds.targets = labels  # type: ignore[attr-defined]
    return ds


LABELS = [c for c in range(4) for _ in range(20)] + [4, 4, 4]  # class 4 has only 3 images


def test_sampling_is_class_balanced_and_keeps_small_classes_whole() -> None:
    idx = sample_indices(LABELS, 5, seed=7)
    per_class = Counter(LABELS[i] for i in idx)
    assert per_class == {0: 5, 1: 5, 2: 5, 3: 5, 4: 3}
    assert idx == sorted(set(idx))  # distinct, in dataset order


def test_sampling_is_deterministic_for_a_seed_and_changes_with_it() -> None:
    assert sample_indices(LABELS, 5, seed=7) == sample_indices(LABELS, 5, seed=7)
    assert sample_indices(LABELS, 5, seed=7) != sample_indices(LABELS, 5, seed=8)


def test_invalid_shot_count_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        sample_indices(LABELS, 0, seed=0)


def test_few_shot_benchmark_cuts_training_sets_only() -> None:
    tasks = [TaskSpec("t0", tuple("abcde"), ("{}",)), TaskSpec("t1", tuple("abcde"), ("{}",))]
    train = [_labelled(LABELS), _labelled(LABELS)]
    test = [_labelled(LABELS), _labelled(LABELS)]
    bench = Benchmark("toy", "mtil", tasks, train, test)
    cut = few_shot(bench, 2, seed=3, name="toy_2shot", protocol="xtail")
    assert cut.name == "toy_2shot" and cut.protocol == "xtail" and cut.test_datasets == test
    assert cut.info["shots"] == 2 and cut.info["shot_seed"] == 3
    for ds in cut.train_datasets:
        assert isinstance(ds, FewShotSubset) and Counter(ds.targets) == {c: 2 for c in range(5)}
        for k in range(len(ds)):  # items are the base's items at the chosen indices, labels unchanged
            image, label = ds[k]
            assert int(image) == ds.indices[k] and int(label) == ds.targets[k] == LABELS[ds.indices[k]]
    # each task draws independently, and the same way on every call
    assert cut.train_datasets[0].indices != cut.train_datasets[1].indices
    again = few_shot(bench, 2, seed=3)
    assert [d.indices for d in again.train_datasets] == [d.indices for d in cut.train_datasets]
