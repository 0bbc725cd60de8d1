"""GIFT's prompt plan: pools per task, uniform sampling with replacement, the official seed formula."""

from __future__ import annotations

from collections import Counter

import pytest

from clbench.synth.prompts import (
    Vocabulary,
    image_seed,
    imagenet_vocabulary,
    make_plan,
    sample_task,
    task_pool,
)

BASE = Vocabulary("base", ("cat", "dog"), "a photo of a {}.")
TASKS = [Vocabulary("Aircraft", ("A320", "B747"), "a photo of a {}, a type of aircraft."),
         Vocabulary("DTD", ("striped",), "a photo of a {} texture."),
         Vocabulary("MNIST", ("0", "1"), 'a photo of the number: "{}".')]


def test_official_seed_formula() -> None:
    assert image_seed(0, 1, 0) == 0
    assert image_seed(7, 3, 2) == 7 + 100_000 * 2 + 10_000_000 * 2
    with pytest.raises(ValueError):
        image_seed(0, 0, 0)  # tasks are 1-based
    with pytest.raises(ValueError):
        image_seed(100_000, 1, 0)


def test_pool_holds_the_vocabulary_and_earlier_tasks_only() -> None:
    assert task_pool(1, BASE, TASKS) == [("a photo of a cat.", "cat", "base"), ("a photo of a dog.", "dog", "base")]
    pool3 = task_pool(3, BASE, TASKS)
    assert ("a photo of a A320, a type of aircraft.", "A320", "Aircraft") in pool3
    assert ("a photo of a striped texture.", "striped", "DTD") in pool3
    assert not any(source == "MNIST" for _, _, source in pool3)  # the current task's classes are not in it
    assert len(pool3) == 2 + 2 + 1


def test_uniform_sampling_with_replacement() -> None:
    entries = sample_task(2, BASE, TASKS, 4000, seed=0)
    counts = Counter(e.prompt for e in entries)
    assert len(counts) == 4 and all(900 < c < 1100 for c in counts.values())  # uniform over 4 candidates
    assert [e.seed for e in entries[:3]] == [100_000, 100_001, 100_002]
    assert entries == sample_task(2, BASE, TASKS, 4000, seed=0)
    assert [e.prompt for e in entries] != [e.prompt for e in sample_task(2, BASE, TASKS, 4000, seed=1)]


def test_plan_covers_every_task_and_is_keyed_by_its_recipe() -> None:
    plan = make_plan(TASKS, BASE, images_per_task=10, seed=1)
    assert [len(t) for t in plan.entries] == [10, 10, 10]
    assert {e.source for e in plan.entries[0]} == {"base"}
    assert plan.entries[2][0].seed == 200_000 + 10_000_000
    assert plan.key() == make_plan(TASKS, BASE, images_per_task=10, seed=1).key()
    assert plan.key() != make_plan(TASKS, BASE, images_per_task=11, seed=1).key()
    assert plan.key() != make_plan(TASKS, BASE, images_per_task=10, seed=0).key()


def test_imagenet_vocabulary_is_clips_list() -> None:
    vocab = imagenet_vocabulary()
    assert len(vocab.class_names) == 1000 and vocab.class_names[:2] == ("tench", "goldfish")
    assert vocab.prompts()[0] == ("a photo of a tench.", "tench")
