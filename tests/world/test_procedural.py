"""The procedural generator honours prompts, is deterministic, and forgets attributes at its drop rate."""

from __future__ import annotations

import numpy as np

from clbench.synth.base import ImageGenerator
from clbench.synth.procedural import ProceduralGenerator
from clbench.world.attributes import COLOURS, VOCABULARY
from clbench.world.captions import parse

PROMPTS = [
    "a photo of two red circles.",
    "a photo of the letter C.",
    "a large green striped heart on the left on a light background",
    "a photo of a blue star.",
    "three small yellow outlined squares",
]


def test_interface_and_config() -> None:
    gen = ProceduralGenerator(image_size=32, drop_prob=0.25)
    assert isinstance(gen, ImageGenerator)
    assert gen.config() == {"backend": "procedural", "version": 1, "image_size": 32, "drop_prob": 0.25}


def test_generator_honours_prompts() -> None:
    gen = ProceduralGenerator()
    cols = gen.scene_attributes(PROMPTS, list(range(len(PROMPTS))))
    for i, prompt in enumerate(PROMPTS):
        for attr, value in parse(prompt).items():
            got = cols[attr][i] if attr == "count" else VOCABULARY[attr][cols[attr][i]]
            assert got == value, (prompt, attr)
    images = gen.generate(PROMPTS, list(range(len(PROMPTS))))
    assert [im.size for im in images] == [(32, 32)] * len(PROMPTS)
    red = np.asarray(images[0]).astype(int)
    assert (np.abs(red - np.array(COLOURS["red"])).max(axis=-1) < 40).sum() > 20


def test_same_prompt_and_seed_same_image() -> None:
    gen = ProceduralGenerator()
    a = gen.generate(PROMPTS, [5, 6, 7, 8, 9])
    b = gen.generate(PROMPTS[2:3], [7])
    assert np.array_equal(np.asarray(a[2]), np.asarray(b[0]))
    c = gen.generate(PROMPTS[2:3], [8])
    assert not np.array_equal(np.asarray(a[2]), np.asarray(c[0]))


def test_unsaid_attributes_vary_and_drop_rate() -> None:
    prompts = ["a photo of a red shape."] * 200
    cols = ProceduralGenerator().scene_attributes(prompts, list(range(200)))
    assert len(set(cols["object"].tolist())) == 10 and set(cols["colour"].tolist()) == {0}
    dropped = ProceduralGenerator(drop_prob=0.5).scene_attributes(prompts, list(range(200)))
    kept = (dropped["colour"] == 0).mean()
    assert 0.45 < kept < 0.65  # half kept, plus chance hits of red among the dropped
