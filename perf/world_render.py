"""Rendering throughput of the offline world: the vectorised renderer vs a plain per-image PIL loop.

Run: ``python perf/world_render.py``. Prints images/s of each and the ratio (target: >= 5,000 images/s on
2 cores for the renderer). The baseline draws the same kind of scene the straightforward way — one PIL image per
scene, supersampled and downsampled for anti-aliasing, then pixel noise — which is what made the prototype's
pre-training rendering-bound.
"""

from __future__ import annotations

import time

import numpy as np
from PIL import Image, ImageDraw

from clbench.world.attributes import COLOUR_NAMES, COLOURS, SIZE_FRACTIONS
from clbench.world.corpus import corpus_scenes
from clbench.world.render import renderer
from clbench.world.seeding import seed_range

SIZE = 32


def pil_baseline(scenes, seeds: np.ndarray) -> np.ndarray:
    """One image at a time with PIL: background, ``count`` ellipses drawn at 4x, downsampled, noise added."""
    out = np.empty((len(seeds), SIZE, SIZE, 3), dtype=np.uint8)
    for i in range(len(seeds)):
        rng = np.random.default_rng(int(seeds[i]) & 0xFFFFFFFF)
        big = Image.new("RGB", (SIZE * 4, SIZE * 4), (22, 22, 28))
        draw = ImageDraw.Draw(big)
        side = SIZE_FRACTIONS[int(scenes.size[i])] * SIZE * 4
        colour = COLOURS[COLOUR_NAMES[int(scenes.colour[i])]]
        for _ in range(int(scenes.count[i])):
            x, y = rng.uniform(0, SIZE * 4 - side, 2)
            draw.ellipse([x, y, x + side, y + side], fill=colour)
        small = np.asarray(big.resize((SIZE, SIZE), Image.Resampling.BOX), dtype=np.float32)
        out[i] = np.clip(small + rng.normal(0, 5, small.shape), 0, 255).astype(np.uint8)
    return out


def throughput(fn, scenes, seeds: np.ndarray, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(scenes, seeds)
        best = min(best, time.perf_counter() - start)
    return len(seeds) / best


def main() -> None:
    r = renderer(SIZE)  # the mask bank is built once per process, outside the timing
    seeds = seed_range(0, "perf", 20000)
    scenes = corpus_scenes(seeds)
    small = type(scenes)(**{k: v[:1000] for k, v in vars(scenes).items()})
    ours = throughput(r.render, scenes, seeds)
    base = throughput(pil_baseline, small, seeds[:1000])
    print(f"vectorised renderer: {ours:,.0f} images/s ({SIZE}x{SIZE}, batches of 20,000)")
    print(f"plain PIL per image: {base:,.0f} images/s")
    print(f"ratio: {ours / base:.1f}x")


if __name__ == "__main__":
    main()
