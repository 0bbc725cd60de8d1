"""GIFT's prompt plan: which prompt, class and seed every synthetic image of every task gets (official recipe).

Task t (1-based) draws uniformly, with replacement, from a pool made of a "pre-training vocabulary" (ImageNet-1k
class names with "a photo of a {c}.") plus the class names of the tasks learned *before* t, each with its
dataset's first template; task 1 draws from the vocabulary only. Image j of task t gets the diffusion seed
``j + 100000·(t−1) + 10^7·seed``. The plan depends only on the task list, the vocabulary, the count and the
synthetic seed, never on a run's seed, so every method, run and seed of a benchmark shares one image cache.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

IMAGENET_TEMPLATE = "a photo of a {}."
MAX_IMAGES_PER_TASK = 100_000  # the seed formula gives each task a block of 100,000 seeds


@dataclass(frozen=True)
class Vocabulary:
    """A named list of class names and the template that turns one into a prompt."""

    name: str
    class_names: tuple[str, ...]
    template: str

    def prompts(self) -> list[tuple[str, str]]:
        """(prompt, class name) for every class, in order."""
        return [(self.template.format(c), c) for c in self.class_names]


@dataclass(frozen=True)
class PlanEntry:
    """One image to generate: its task (1-based), position j in the task, prompt, class, source and seed."""

    task: int
    j: int
    prompt: str
    class_name: str
    source: str  # the vocabulary's name or the earlier task the class comes from
    seed: int


def imagenet_vocabulary() -> Vocabulary:
    """OpenAI CLIP's ImageNet-1k class names (the list ZSCL and GIFT use), with GIFT's "a photo of a {c}."."""
    try:
        from clbench.benchmarks.classnames.imagenet import CLASS_NAMES
    except ImportError:  # the same list ships with open_clip
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES as CLASS_NAMES

    return Vocabulary("imagenet", tuple(CLASS_NAMES), IMAGENET_TEMPLATE)


def image_seed(j: int, task: int, seed: int) -> int:
    """The official per-image seed: ``j + 100000·(t−1) + 10^7·seed`` with ``task`` = t, 1-based."""
    if task < 1:
        raise ValueError("task numbers are 1-based")
    if not 0 <= j < MAX_IMAGES_PER_TASK:
        raise ValueError(f"at most {MAX_IMAGES_PER_TASK} images per task")
    return j + 100_000 * (task - 1) + 10_000_000 * seed


def task_pool(task: int, base: Vocabulary, tasks: Sequence[Vocabulary]) -> list[tuple[str, str, str]]:
    """(prompt, class, source) candidates of ``task`` (1-based): the base vocabulary + tasks before it."""
    pool = [(p, c, base.name) for p, c in base.prompts()]
    for earlier in tasks[: task - 1]:
        pool.extend((p, c, earlier.name) for p, c in earlier.prompts())
    return pool


def sample_task(task: int, base: Vocabulary, tasks: Sequence[Vocabulary], n: int, seed: int) -> list[PlanEntry]:
    """``n`` entries of ``task``, drawn uniformly with replacement from its pool (numpy PCG64 on (seed, task))."""
    pool = task_pool(task, base, tasks)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, task])))
    picks = rng.integers(0, len(pool), size=n)
    return [PlanEntry(task, j, *pool[int(k)], image_seed(j, task, seed)) for j, k in enumerate(picks)]


@dataclass(frozen=True)
class Plan:
    """Every image of every task; ``key()`` names the plan's manifest in the cache."""

    base: Vocabulary
    tasks: tuple[Vocabulary, ...]
    images_per_task: int
    seed: int
    entries: tuple[tuple[PlanEntry, ...], ...]  # per task, in order

    def flat(self) -> list[PlanEntry]:
        return [e for task in self.entries for e in task]

    def describe(self) -> dict[str, object]:
        """What determines the plan (the entries follow from it)."""
        return {"base": asdict(self.base), "tasks": [asdict(t) for t in self.tasks],
                "images_per_task": self.images_per_task, "seed": self.seed}

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode()).hexdigest()[:16]


def make_plan(tasks: Sequence[Vocabulary], base: Vocabulary | None = None, images_per_task: int = 1000,
              seed: int = 0) -> Plan:
    """The official plan for a task sequence; ``base`` defaults to the ImageNet vocabulary."""
    if images_per_task < 1 or images_per_task > MAX_IMAGES_PER_TASK:
        raise ValueError(f"images_per_task must be in 1..{MAX_IMAGES_PER_TASK}")
    base = base or imagenet_vocabulary()
    tasks = tuple(tasks)
    entries = tuple(tuple(sample_task(t, base, tasks, images_per_task, seed)) for t in range(1, len(tasks) + 1))
    return Plan(base, tasks, images_per_task, seed, entries)
