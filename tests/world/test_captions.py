"""Captions <-> attributes: parse recovers what a caption mentions, and the rendering honours it."""

from __future__ import annotations

import itertools

import numpy as np

from clbench.world.attributes import COLOURS, Scene
from clbench.world.captions import ATTRIBUTES, caption, is_plural, mentioned, parse
from clbench.world.render import render_scene
from clbench.world.sampling import sample_scenes


def test_parse_recovers_every_mentioned_subset() -> None:
    scenes = sample_scenes(np.arange(60, dtype=np.uint64)).scenes()
    subsets = [s for r in range(1, len(ATTRIBUTES) + 1) for s in itertools.combinations(ATTRIBUTES, r)]
    for i, scene in enumerate(scenes):
        for j, mention in enumerate(subsets[i % 7::7]):
            text = caption(scene, mention, wrapper=i + j, generic=j, determiner=i)
            assert parse(text) == mentioned(scene, mention), text


def test_parse_reads_class_prompts() -> None:
    assert parse("a photo of the letter B.") == {"object": "letter B", "count": 1}
    assert parse("a photo of the digit 7.")["object"] == "digit 7"
    assert parse("a photo of two shapes.") == {"count": 2}
    assert parse("a photo of the shape on the left.")["position"] == "left"
    assert parse("a drawing of a red circle on a dark background") == {
        "object": "circle", "colour": "red", "count": 1, "background": "dark"}
    assert is_plural("blue stars") and parse("blue stars") == {"object": "star", "colour": "blue"}


def test_rendering_honours_the_parsed_caption() -> None:
    for i, colour in enumerate(COLOURS):
        text = f"a photo of one large {colour} solid heart on a gray background"
        scene = Scene(**parse(text))
        img = render_scene(scene, seed=i).astype(int)
        near = np.abs(img - np.array(COLOURS[colour])).max(axis=-1) < 40
        assert near.mean() > 0.15, text
