"""Renderer: deterministic per (scene, seed), independent of the batch, honours colours and sizes."""

from __future__ import annotations

import numpy as np
import pytest

from clbench.world.attributes import COLOURS, OBJECTS, Scene, SceneBatch
from clbench.world.render import render, render_scene
from clbench.world.sampling import sample_scenes


def _batch(n: int, seed: int = 0) -> tuple[SceneBatch, np.ndarray]:
    seeds = np.arange(seed, seed + n, dtype=np.uint64)
    return sample_scenes(seeds), seeds


def test_render_is_deterministic_and_batch_independent() -> None:
    scenes, seeds = _batch(64)
    a = render(scenes, seeds)
    assert a.shape == (64, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, render(scenes, seeds))
    # Image i depends on its own (scene, seed) only: rendering a slice or a reordering gives the same pixels.
    tail = SceneBatch(**{k: v[40:][::-1] for k, v in vars(scenes).items()})
    assert np.array_equal(render(tail, seeds[40:][::-1]), a[40:][::-1])


def test_seeds_change_the_image() -> None:
    scene = Scene("star", "blue", "large", fill="solid", background="noisy")
    assert not np.array_equal(render_scene(scene, 1), render_scene(scene, 2))


@pytest.mark.parametrize("size", [16, 48])
def test_image_size_is_configurable(size: int) -> None:
    scenes, seeds = _batch(8)
    assert render(scenes, seeds, image_size=size).shape == (8, size, size, 3)


@pytest.mark.parametrize("colour", list(COLOURS))
def test_colour_pixels_present(colour: str) -> None:
    img = render_scene(Scene("square", colour, "large", background="gray"), seed=3).astype(int)
    close = np.abs(img - np.array(COLOURS[colour])).max(axis=-1) < 40
    assert close.mean() > 0.2, f"{colour}: only {close.mean():.2%} of pixels near its RGB"


def test_every_object_draws_ink_and_size_grows() -> None:
    for obj in OBJECTS:
        inks = []
        for size in ("small", "medium", "large"):
            img = render_scene(Scene(obj, "yellow", size, background="dark"), seed=0).astype(int)
            inks.append(int((img.sum(axis=-1) > 300).sum()))
        assert inks[0] > 4 and inks[0] < inks[1] < inks[2], (obj, inks)


def test_count_draws_separate_objects() -> None:
    from scipy import ndimage

    for count in (1, 2, 3, 4):
        img = render_scene(Scene("circle", "red", "small", fill="solid", background="dark", count=count), seed=5)
        _, blobs = ndimage.label(img[..., 0] > 120)
        assert blobs == count
