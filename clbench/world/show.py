"""A contact sheet of world samples with their captions (``clbench world show``, the README picture)."""

from __future__ import annotations

import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from clbench.world import seeding
from clbench.world.attributes import OBJECTS
from clbench.world.corpus import CORPUS_COUNTS, CORPUS_OBJECTS, corpus_captions
from clbench.world.render import render
from clbench.world.sampling import sample_scenes

CELL = 128  # pixels per sample on the sheet (nearest-neighbour upscaling keeps the real pixels visible)
COLUMNS = 6
CAPTION_LINES = 5


def sample_sheet(n: int, seed: int = 0, image_size: int = 32, novel: bool = False) -> Image.Image:
    """``n`` pre-training-style samples (letters and digits too when ``novel``) with captions underneath."""
    seeds = seeding.seed_range(seed, "show", n)
    objects = tuple(range(len(OBJECTS))) if novel else CORPUS_OBJECTS
    scenes = sample_scenes(seeds, allowed={"object": objects, "count": CORPUS_COUNTS})
    images = render(scenes, seeds, image_size)
    captions = corpus_captions(scenes, seeds)
    return _sheet(images, captions)


def _sheet(images: np.ndarray, captions: list[str]) -> Image.Image:
    font = ImageFont.load_default(size=13)
    line_height = 16
    columns = min(COLUMNS, len(images))
    rows = -(-len(images) // columns)
    cell_h = CELL + 6 + CAPTION_LINES * line_height
    sheet = Image.new("RGB", (columns * (CELL + 12) + 12, rows * (cell_h + 12) + 12), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (img, text) in enumerate(zip(images, captions, strict=True)):
        x = 12 + (i % columns) * (CELL + 12)
        y = 12 + (i // columns) * (cell_h + 12)
        sheet.paste(Image.fromarray(img).resize((CELL, CELL), Image.Resampling.NEAREST), (x, y))
        for k, line in enumerate(textwrap.wrap(text, 19)[:CAPTION_LINES]):
            draw.text((x, y + CELL + 4 + k * line_height), line, fill=(20, 20, 20), font=font)
    return sheet
