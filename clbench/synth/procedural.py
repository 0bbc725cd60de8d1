"""The offline world's text-to-image backend: prompt -> scene (by its attribute words) -> rendered image.

It stands in for Stable Diffusion so GIFT's synthetic-data path runs with no download. Attributes the prompt
does not name are drawn from the seed; ``drop_prob`` (the fidelity knob) forgets each named attribute with that
probability, mimicking a diffusion model that does not always follow the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from clbench.world import seeding
from clbench.world.attributes import SHAPES, VOCABULARY, SceneBatch
from clbench.world.captions import is_plural, parse
from clbench.world.render import DEFAULT_IMAGE_SIZE, render
from clbench.world.sampling import SCENE_FIELDS, sample_scenes, values

_VERSION = 1  # bump when the mapping from (prompt, seed) to image changes: it keys the synthetic-data cache
_UNSAID_OBJECTS = tuple(VOCABULARY["object"].index(s) for s in SHAPES)  # pre-training's objects


class ProceduralGenerator:
    """Renders the scene a prompt describes; the same (prompt, seed) always gives the same image."""

    backend = "procedural"

    def __init__(self, image_size: int = DEFAULT_IMAGE_SIZE, drop_prob: float = 0.0) -> None:
        if not 0.0 <= drop_prob <= 1.0:
            raise ValueError(f"drop_prob must be in [0, 1], got {drop_prob}")
        self.image_size = int(image_size)
        self.drop_prob = float(drop_prob)

    def config(self) -> dict[str, Any]:
        return {"backend": self.backend, "version": _VERSION, "image_size": self.image_size,
                "drop_prob": self.drop_prob}

    def scene_attributes(self, prompts: Sequence[str], seeds: Sequence[int]) -> dict[str, np.ndarray]:
        """The attribute index arrays the images will show (what tests check against the prompts)."""
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        base = seeding.derive(seeding.as_seeds(seeds), "procedural")
        scenes = sample_scenes(base, allowed={"object": _UNSAID_OBJECTS})
        columns = {a: getattr(scenes, a).copy() for a in SCENE_FIELDS}
        for i, prompt in enumerate(prompts):
            said = parse(prompt)
            for attr, value in said.items():
                if self.drop_prob and seeding.uniform(base[i:i + 1], "drop." + attr)[0] < self.drop_prob:
                    continue
                columns[attr][i] = values(attr, [value])[0]
            if "count" not in said and is_plural(prompt) and columns["count"][i] == 1:
                columns["count"][i] = 2 + int(seeding.integers(base[i:i + 1], "plural.count", 3)[0])
        return columns

    def generate(self, prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        """One RGB image per (prompt, seed)."""
        columns = self.scene_attributes(prompts, seeds)
        base = seeding.derive(seeding.as_seeds(seeds), "procedural")
        images = render(SceneBatch(**columns), base, self.image_size)
        return [Image.fromarray(img) for img in images]
