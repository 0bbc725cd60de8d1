"""Vectorised scene renderer: a batch of :class:`SceneBatch` rows + seeds -> uint8 RGB images, with numpy only.

Why this shape: drawing each image with PIL in Python was the prototype's bottleneck (most of its pre-training
time). Here PIL draws each (object, size, fill) alpha mask once per image size, supersampled for anti-aliasing;
a batch is then a handful of array operations — one gather of the mask bank per object slot and an alpha blend —
so tens of thousands of images render per second on one core. Randomness (jitter, colour shade, pixel noise)
comes from :mod:`clbench.world.seeding`, so an image depends only on its scene and its own seed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import cache, lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from clbench.world import seeding
from clbench.world.attributes import (
    BACKGROUNDS,
    COLOURS,
    FILLS,
    OBJECTS,
    POSITION_ANCHORS,
    POSITIONS,
    SHAPES,
    SIZE_FRACTIONS,
    Scene,
    SceneBatch,
)

DEFAULT_IMAGE_SIZE = 32
_SUPERSAMPLE = 4
_CHUNK = 2048  # images per vectorised pass (bounds the temporary arrays)
_QUADRANTS = np.array([(0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)])
_PERMUTATIONS = np.array(list(itertools.permutations(range(4))), dtype=np.int64)  # quadrant orders
_COLOUR_TABLE = np.array(list(COLOURS.values()), dtype=np.float32)
_BACKGROUND_TABLE = np.array([v if v is not None else (120, 120, 120) for v in BACKGROUNDS.values()],
                             dtype=np.float32)
_NOISY_BACKGROUND = list(BACKGROUNDS).index("noisy")
_ANCHORS = np.array([POSITION_ANCHORS[p] for p in POSITIONS])  # (row, column) fractions per position


def _polygon(name: str) -> list[tuple[float, float]]:
    """Outline of a shape in the unit box [-1, 1]^2 (y down)."""
    if name == "square":
        return [(-0.82, -0.82), (0.82, -0.82), (0.82, 0.82), (-0.82, 0.82)]
    if name == "triangle":
        return [(0.0, -0.95), (0.97, 0.8), (-0.97, 0.8)]
    if name == "diamond":
        return [(0.0, -1.0), (0.8, 0.0), (0.0, 1.0), (-0.8, 0.0)]
    if name == "star":
        pts = []
        for i in range(10):
            r = 1.0 if i % 2 == 0 else 0.42
            a = -math.pi / 2 + i * math.pi / 5
            pts.append((r * math.cos(a), r * math.sin(a) + 0.08))
        return pts
    if name == "cross":
        w = 0.32
        return [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w),
                (-w, -w)]
    if name == "heart":
        pts = []
        for i in range(64):
            t = 2 * math.pi * i / 64
            x = 16 * math.sin(t) ** 3
            y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
            pts.append((x / 16.5, (y + 2.5) / 15.0))
        return pts
    if name == "hexagon":
        return [(math.cos(math.pi / 3 * i), 0.95 * math.sin(math.pi / 3 * i)) for i in range(6)]
    if name == "arrow":
        return [(-0.95, -0.28), (0.1, -0.28), (0.1, -0.8), (0.97, 0.0), (0.1, 0.8), (0.1, 0.28), (-0.95, 0.28)]
    raise KeyError(name)


def _object_mask(name: str, side: int) -> Image.Image:
    """Binary ``L`` mask of an object filling a ``side`` x ``side`` box (supersampled pixels)."""
    img = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(img)
    half = side / 2

    def to_px(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(half + x * half * 0.97, half + y * half * 0.97) for x, y in pts]

    if name in SHAPES:
        if name == "circle":
            draw.ellipse([side * 0.03, side * 0.03, side * 0.97, side * 0.97], fill=255)
        elif name == "crescent":
            draw.ellipse([side * 0.03, side * 0.03, side * 0.97, side * 0.97], fill=255)
            draw.ellipse([side * 0.33, side * -0.05, side * 1.15, side * 0.8], fill=0)
        else:
            draw.polygon(to_px(_polygon(name)), fill=255)
        return img
    return _glyph_mask(name.split(" ", 1)[1], side)


@cache
def _glyph_source(char: str) -> Image.Image:
    """The glyph drawn once, large, with PIL's bundled default font, cropped to its ink."""
    try:
        font = ImageFont.load_default(size=96)  # Pillow >= 10.1: the bundled Aileron (bitmap without FreeType)
    except TypeError:
        font = ImageFont.load_default()  # Pillow 10.0: the bitmap font; glyphs are rescaled to the box anyway
    canvas = Image.new("L", (160, 160), 0)
    ImageDraw.Draw(canvas).text((30, 10), char, fill=255, font=font)
    box = canvas.getbbox()
    if box is None:
        raise RuntimeError(f"the default font drew nothing for {char!r}")
    return canvas.crop(box)


def _glyph_mask(char: str, side: int) -> Image.Image:
    glyph = _glyph_source(char)
    scale = 0.95 * side / max(glyph.size)
    w, h = max(1, round(glyph.size[0] * scale)), max(1, round(glyph.size[1] * scale))
    # Thin strokes vanish at 32 px: thicken in proportion to the box before shrinking.
    glyph = glyph.resize((w, h), Image.Resampling.LANCZOS).point(lambda v: 255 if v > 90 else 0)
    thick = max(3, (side // 14) | 1)
    glyph = glyph.filter(ImageFilter.MaxFilter(thick))
    img = Image.new("L", (side, side), 0)
    img.paste(glyph, ((side - w) // 2, (side - h) // 2))
    return img


def _fill_pattern(fill: str, side: int, image_size: int) -> np.ndarray:
    """Where a textured fill puts colour, on a supersampled ``side`` box (bool array)."""
    yy, xx = np.mgrid[0:side, 0:side] / _SUPERSAMPLE  # in output pixels
    if fill == "striped":
        period = max(3.0, image_size / 8)
        return ((xx + yy) % period) < period / 2
    if fill == "checkered":
        cell = max(2.0, image_size * 3 / 32)
        return ((xx // cell + yy // cell) % 2) == 0
    if fill == "dotted":
        period = max(3.0, image_size * 5 / 32)
        dy = (yy % period) - period / 2
        dx = (xx % period) - period / 2
        return dx * dx + dy * dy <= (period * 0.3) ** 2
    raise KeyError(fill)


def _downsample(mask: np.ndarray) -> np.ndarray:
    """Box-filter a supersampled [0,1] mask to output pixels."""
    s = mask.shape[0] // _SUPERSAMPLE
    return mask.reshape(s, _SUPERSAMPLE, s, _SUPERSAMPLE).mean(axis=(1, 3)).astype(np.float32)


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Square-kernel erosion, separably (PIL's MinFilter is quadratic in the kernel: seconds per bank)."""
    out = mask
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        n = out.shape[axis]
        out = np.min([np.take(padded, np.arange(k, k + n), axis=axis) for k in range(2 * radius + 1)], axis=0)
    return out


def _alphas(obj: str, side: int, image_size: int) -> list[np.ndarray]:
    """Anti-aliased alpha of ``obj`` at ``side`` output pixels for every fill, in :data:`FILLS` order."""
    hi = side * _SUPERSAMPLE
    solid = np.asarray(_object_mask(obj, hi), dtype=np.float32) / 255.0
    thickness = round(max(1.0, image_size / 20) * _SUPERSAMPLE)
    outline = np.clip(solid - _erode(solid, thickness), 0.0, 1.0)
    out = []
    for fill in FILLS:
        if fill == "solid":
            out.append(_downsample(solid))
        elif fill == "outlined":
            out.append(_downsample(outline))
        else:
            pattern = _fill_pattern(fill, hi, image_size).astype(np.float32)
            out.append(_downsample(np.maximum(outline, solid * pattern)))
    return out


class Renderer:
    """Renders scene batches at one image size; builds its mask bank once (a fraction of a second)."""

    def __init__(self, image_size: int = DEFAULT_IMAGE_SIZE) -> None:
        if image_size < 16:
            raise ValueError(f"image_size must be at least 16, got {image_size}")
        self.image_size = image_size
        self.sides = tuple(max(4, round(f * image_size)) for f in SIZE_FRACTIONS)
        self.box = max(self.sides)
        self._build_bank()
        # Noise fields are fixed (part of the renderer's definition, not of a run); each image picks one.
        rng = np.random.default_rng(20240601)
        count = int(np.clip(2**21 // (image_size * image_size * 3), 8, 256))
        self._noise = (5.0 * rng.standard_normal((count, 3, image_size * image_size))).astype(np.float32)
        self._grain = (24.0 * rng.standard_normal((count, image_size * image_size))).astype(np.float32)

    def _build_bank(self) -> None:
        """Bank[k] = alpha of (object, size, fill) centred in a box, with a zero border for out-of-box reads."""
        m = self.box
        bank = np.zeros((len(OBJECTS) * len(self.sides) * len(FILLS), m + 2, m + 2), dtype=np.float32)
        for o, obj in enumerate(OBJECTS):
            for s, side in enumerate(self.sides):
                off = 1 + (m - side) // 2
                for f, alpha in enumerate(_alphas(obj, side, self.image_size)):
                    bank[self._bank_index(o, s, f)][off:off + side, off:off + side] = alpha
        self.bank = bank
        self._flat_bank = bank.reshape(-1)

    def _bank_index(self, obj: np.ndarray | int, size: np.ndarray | int, fill: np.ndarray | int) -> np.ndarray:
        return (np.asarray(obj) * len(self.sides) + size) * len(FILLS) + fill

    def render(self, scenes: SceneBatch, seeds: Sequence[int] | np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 images; image i depends only on ``scenes`` row i and ``seeds[i]``."""
        seeds = seeding.as_seeds(seeds)
        if len(seeds) != len(scenes):
            raise ValueError(f"{len(scenes)} scenes but {len(seeds)} seeds")
        out = np.empty((len(scenes), self.image_size, self.image_size, 3), dtype=np.uint8)
        for start in range(0, len(scenes), _CHUNK):
            rows = slice(start, start + _CHUNK)
            chunk = SceneBatch(**{k: v[rows] for k, v in vars(scenes).items()})
            out[rows] = self._render_chunk(chunk, seeds[rows])
        return out

    def _render_chunk(self, sc: SceneBatch, seeds: np.ndarray) -> np.ndarray:
        n, s, m2 = len(sc), self.image_size, self.box + 2
        # All objects of a scene share one colour: composite their alphas first, blend colours once.
        many = sc.count > 1
        size = np.where(many & (sc.size == len(self.sides) - 1), len(self.sides) - 2, sc.size)  # no large crowds
        half = np.asarray(self.sides, dtype=np.float64)[size] / 2
        order = _PERMUTATIONS[seeding.integers(seeds, "quadrants", len(_PERMUTATIONS))]
        anchors = _ANCHORS[sc.position]
        bank_offset = self._bank_index(sc.object, size, sc.fill) * (m2 * m2)
        jitter = s / 16
        ar = np.arange(s)
        alpha = np.zeros((n, s * s), dtype=np.float32)
        for slot in range(4):
            rows = np.flatnonzero(sc.count > slot)
            if not len(rows):
                break
            r_seeds = seeds[rows]
            crowd = many[rows, None]
            centre = np.where(crowd, _QUADRANTS[order[rows, slot]], anchors[rows]) * s
            h = half[rows, None]
            # Several objects keep inside their quadrant, so they never touch: jitter only within its slack.
            reach = np.where(crowd, np.clip(s / 4 - h, 0, jitter), jitter)
            centre += (np.stack([seeding.uniform(r_seeds, f"jitter.{slot}.{a}") for a in "yx"], axis=1) * 2 - 1) \
                * reach
            top = np.round(np.clip(centre, h, s - h) - self.box / 2).astype(np.int64)  # bank box top-left
            iy = np.clip(ar[None, :] - top[:, :1] + 1, 0, m2 - 1)
            ix = np.clip(ar[None, :] - top[:, 1:] + 1, 0, m2 - 1)
            flat = (iy[:, :, None] * m2 + ix[:, None, :]).reshape(len(rows), s * s) + bank_offset[rows, None]
            a = np.take(self._flat_bank, flat)
            if slot == 0:
                alpha = a
            else:
                alpha[rows] = np.maximum(alpha[rows], a)

        # Channels-first while blending: numpy's inner loops then run over pixels, not over 3 channels.
        shift = (seeding.uniform(seeds, "bg.shift") * 24 - 12).astype(np.float32)
        bg = _BACKGROUND_TABLE[sc.background] + shift[:, None]
        colour = _COLOUR_TABLE[sc.colour] + np.stack(
            [seeding.uniform(seeds, f"colour.{c}") * 30 - 15 for c in range(3)], axis=1).astype(np.float32)
        img = self._noise[seeding.integers(seeds, "pixel.noise", len(self._noise))]  # (N, 3, H*W), a copy
        img += alpha[:, None, :] * (colour - bg)[:, :, None]
        img += bg[:, :, None]
        noisy = np.flatnonzero(sc.background == _NOISY_BACKGROUND)
        if len(noisy):  # grey grain behind the objects: bg + grain, blended -> extra grain * (1 - alpha)
            grain = self._grain[seeding.integers(seeds[noisy], "bg.noise", len(self._grain))]
            img[noisy] += (grain * (1.0 - alpha[noisy]))[:, None, :]
        np.clip(img, 0, 255, out=img)
        out = np.rint(img, out=img).astype(np.uint8)
        return np.ascontiguousarray(out.reshape(n, 3, s, s).transpose(0, 2, 3, 1))


@lru_cache(maxsize=8)
def renderer(image_size: int = DEFAULT_IMAGE_SIZE) -> Renderer:
    """The shared renderer for an image size (the mask bank is built once per process)."""
    return Renderer(image_size)


def render(scenes: SceneBatch, seeds: Sequence[int] | np.ndarray, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """Render a batch of scenes: (N, H, W, 3) uint8, deterministic in (scene, seed)."""
    return renderer(image_size).render(scenes, seeds)


def render_scene(scene: Scene, seed: int, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """One image (H, W, 3) uint8."""
    return render(SceneBatch.from_scenes([scene]), [seed], image_size)[0]
