"""Drawing scenes from the world: each attribute uniform over its allowed values, decided by the image's seed.

Used by the pre-training corpus, the reference corpus, the task datasets and the procedural generator, which
differ only in what they allow or fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from clbench.world import seeding
from clbench.world.attributes import VOCABULARY, SceneBatch

SCENE_FIELDS: tuple[str, ...] = ("object", "colour", "size", "position", "fill", "background", "count")


def values(attribute: str, names: Sequence[object]) -> list[int]:
    """Index values of attribute names (counts are their own values)."""
    if attribute == "count":
        return [int(n) for n in names]  # type: ignore[call-overload]
    vocab = VOCABULARY[attribute]
    return [vocab.index(n) for n in names]


def sample_scenes(seeds: np.ndarray, allowed: Mapping[str, Sequence[int]] | None = None,
                  fixed: Mapping[str, np.ndarray] | None = None) -> SceneBatch:
    """One scene per seed: ``fixed[attr]`` (per-row values) wins, else uniform over ``allowed[attr]`` (index
    values, counts as counts; repeat a value to weight it), else uniform over the whole vocabulary."""
    allowed = allowed or {}
    fixed = fixed or {}
    seeds = seeding.as_seeds(seeds)
    columns: dict[str, np.ndarray] = {}
    for attr in SCENE_FIELDS:
        if attr in fixed:
            columns[attr] = np.broadcast_to(np.asarray(fixed[attr], dtype=np.int64), (len(seeds),)).copy()
            continue
        default = list(VOCABULARY[attr]) if attr == "count" else list(range(len(VOCABULARY[attr])))
        options = np.asarray(allowed.get(attr, default), dtype=np.int64)
        columns[attr] = options[seeding.integers(seeds, "scene." + attr, len(options))]
    return SceneBatch(**columns)
