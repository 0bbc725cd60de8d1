"""World tasks: balanced, stable across runs, train/test disjoint, class subsets reuse the same images."""

from __future__ import annotations

import hashlib

import numpy as np

from clbench.world.attributes import VOCABULARY
from clbench.world.tasks import CIL_TASK, TASKS, make_split


def test_splits_are_stable_balanced_and_disjoint() -> None:
    for name, task in TASKS.items():
        train, train_labels = make_split(task, "train", 12)
        test, test_labels = make_split(task, "test", 6)
        again, _ = make_split(task, "train", 12)
        assert np.array_equal(train, again), name
        assert np.bincount(train_labels).tolist() == [12] * len(task.classes)
        assert np.bincount(test_labels).tolist() == [6] * len(task.classes)
        hashes = {hashlib.sha1(i.tobytes()).hexdigest() for i in train}
        assert not hashes & {hashlib.sha1(i.tobytes()).hexdigest() for i in test}, name
        assert len(hashes) == len(train), name


def test_data_seed_changes_data() -> None:
    a, _ = make_split(TASKS["shape"], "train", 4, data_seed=0)
    b, _ = make_split(TASKS["shape"], "train", 4, data_seed=1)
    assert not np.array_equal(a, b)


def test_labels_fix_the_class_attribute() -> None:
    seeds = np.arange(100, dtype=np.uint64)
    labels = np.arange(100) % 10
    scenes = TASKS["letters"].scenes(seeds, labels)
    names = [VOCABULARY["object"][o] for o in scenes.object]
    letters = TASKS["letters"].class_names
    assert all(n == f"letter {letters[label]}" for n, label in zip(names, labels, strict=True))
    assert set(scenes.count.tolist()) == {1}


def test_class_subset_keeps_images() -> None:
    full, full_labels = make_split(CIL_TASK, "train", 3)
    part, part_labels = make_split(CIL_TASK, "train", 3, class_ids=[7, 31])
    for image, label in zip(part, part_labels, strict=True):
        match = [np.array_equal(image, f) for f, fl in zip(full, full_labels, strict=True) if fl == label]
        assert any(match)
