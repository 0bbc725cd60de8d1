"""The world's classification "datasets": which attribute is the label, what the others may be, prompts.

Attribute tasks (shape, colour, texture, count, position, size) are what pre-training taught — the analogue
of CLIP's zero-shot knowledge in MTIL; the novel tasks (letters, digits) were never seen and start near chance.
Each split draws its seeds from its own namespace (``task/<name>/<split>`` under the data seed), so train and
test never share an image and the data do not depend on the training seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clbench.benchmark import TaskSpec
from clbench.world import seeding
from clbench.world.attributes import (
    COLOUR_NAMES,
    COUNT_WORDS,
    COUNTS,
    DIGIT_OBJECTS,
    DIGITS,
    FILLS,
    LETTER_OBJECTS,
    LETTERS,
    POSITION_PHRASES,
    POSITIONS,
    SHAPES,
    SIZES,
    SceneBatch,
)
from clbench.world.render import DEFAULT_IMAGE_SIZE, render
from clbench.world.sampling import SCENE_FIELDS, sample_scenes, values

SPLITS = ("train", "test")


@dataclass(frozen=True)
class WorldTask:
    """A labelled view of the world: class ``i`` fixes the attributes ``classes[i]``; ``allowed`` limits the
    others (unlisted ones range over the whole vocabulary)."""

    name: str
    class_names: tuple[str, ...]
    classes: tuple[Mapping[str, Any], ...]
    templates: tuple[str, ...]
    allowed: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    novel: bool = False

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.classes):
            raise ValueError(f"task {self.name}: {len(self.class_names)} names for {len(self.classes)} classes")

    def spec(self, lr: float | None = None) -> TaskSpec:
        return TaskSpec(self.name, self.class_names, self.templates, lr)

    def scenes(self, seeds: np.ndarray, labels: np.ndarray) -> SceneBatch:
        """Scenes of the given classes, the free attributes drawn from each seed."""
        fixed = {}
        for attr in SCENE_FIELDS:
            if attr in self.classes[0]:
                table = np.array(values(attr, [c[attr] for c in self.classes]), dtype=np.int64)
                fixed[attr] = table[labels]
        allowed = {a: values(a, v) for a, v in self.allowed.items()}
        return sample_scenes(seeds, allowed, fixed)


def _one_attribute(attr: str, options: Sequence[Any]) -> tuple[Mapping[str, Any], ...]:
    return tuple({attr: o} for o in options)


SINGLE = {"count": (1,)}
SHAPE_OBJECTS = {"object": SHAPES}

TASKS: dict[str, WorldTask] = {t.name: t for t in (
    WorldTask(
        "shape", SHAPES, _one_attribute("object", SHAPES),
        ("a photo of the {}.", "a drawing of a {}.", "an image of one {}."),
        {**SINGLE, "size": ("medium", "large")},
    ),
    WorldTask(
        "colour", COLOUR_NAMES, _one_attribute("colour", COLOUR_NAMES),
        ("a photo of the {} shape.", "a drawing of a {} object.", "an image of one {} shape."),
        {**SHAPE_OBJECTS, "count": (1, 2)},
    ),
    WorldTask(
        "texture", FILLS, _one_attribute("fill", FILLS),
        ("a photo of the {} shape.", "a drawing of a {} object.", "an image of one {} shape."),
        {**SHAPE_OBJECTS, **SINGLE, "size": ("large",)},
    ),
    WorldTask(
        "count",
        tuple(f"{w} shape" if c == 1 else f"{w} shapes" for w, c in zip(COUNT_WORDS, COUNTS, strict=True)),
        _one_attribute("count", COUNTS),
        ("a photo of {}.", "a drawing of {}.", "an image of {}."),
        {**SHAPE_OBJECTS, "size": ("small",)},
    ),
    WorldTask(
        "position", tuple(POSITION_PHRASES[p] for p in POSITIONS), _one_attribute("position", POSITIONS),
        ("a photo of the shape {}.", "a drawing of an object {}.", "an image of one shape {}."),
        {**SHAPE_OBJECTS, **SINGLE, "size": ("small",)},
    ),
    WorldTask(
        "size", SIZES, _one_attribute("size", SIZES),
        ("a photo of the {} shape.", "a drawing of a {} object.", "an image of one {} shape."),
        {**SHAPE_OBJECTS, **SINGLE},
    ),
    WorldTask(
        "letters", LETTERS, _one_attribute("object", LETTER_OBJECTS),
        ("a photo of the letter {}.", "a drawing of the letter {}.", "an image of the letter {}."),
        {**SINGLE, "size": ("large",), "fill": ("solid",)}, novel=True,  # large: learnable in a few hundred steps
    ),
    WorldTask(
        "digits", DIGITS, _one_attribute("object", DIGIT_OBJECTS),
        ("a photo of the digit {}.", "a drawing of the digit {}.", "an image of the digit {}."),
        {**SINGLE, "size": ("large",), "fill": ("solid",)}, novel=True,
    ),
)}

# Class-incremental pool: 50 shape-colour conjunctions (5 well-separated colours x 10 shapes).
CIL_COLOURS: tuple[str, ...] = ("red", "yellow", "green", "blue", "purple")
CIL_TASK = WorldTask(
    "shape-colour",
    tuple(f"{c} {s}" for c in CIL_COLOURS for s in SHAPES),
    tuple({"colour": c, "object": s} for c in CIL_COLOURS for s in SHAPES),
    ("a photo of the {}.", "a drawing of a {}.", "an image of one {}."),
    {**SINGLE, "size": ("medium", "large")},
)


def task(name: str) -> WorldTask:
    """A world task by name (``KeyError`` lists the valid names)."""
    if name == CIL_TASK.name:
        return CIL_TASK
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown world task {name!r}; valid: {', '.join([*TASKS, CIL_TASK.name])}") from None


def split_seeds(task_name: str, split: str, n: int, data_seed: int = 0) -> np.ndarray:
    """Per-image seeds of a split: its own namespace, so splits and tasks never share images."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    return seeding.seed_range(data_seed, f"task/{task_name}/{split}", n)


def make_split(world_task: WorldTask, split: str, per_class: int, data_seed: int = 0,
               image_size: int = DEFAULT_IMAGE_SIZE,
               class_ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 images and int64 labels (class indices of ``world_task``), balanced per class.

    ``class_ids`` restricts to some classes (class-incremental steps) without changing any image: image ``j``
    of class ``c`` is the same whichever other classes are drawn.
    """
    if per_class <= 0:
        raise ValueError(f"images per class must be positive, got {per_class}")
    n_classes = len(world_task.classes)
    ids = np.arange(n_classes) if class_ids is None else np.asarray(class_ids, dtype=np.int64)
    # Seed index = j * n_classes + c: class c's j-th image whatever the subset.
    index = (np.arange(per_class)[:, None] * n_classes + ids[None, :]).reshape(-1)
    all_seeds = split_seeds(world_task.name, split, int(index.max()) + 1, data_seed)
    seeds = all_seeds[index]
    labels = np.tile(ids, per_class)
    return render(world_task.scenes(seeds, labels), seeds, image_size), labels
