"""The world's vocabulary: every attribute dimension, its values, and a scene made of them.

A scene is one kind of object (a shape, or a letter/digit of the novel families) drawn ``count`` times with one
colour, size and fill on one background; ``position`` places a single object (several objects go to distinct
quadrants instead, and "large" there means the largest that fits a quadrant, i.e. drawn medium). Values are stored as indices into the tuples below so that whole batches of scenes are plain
integer arrays the vectorised renderer consumes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

SHAPES: tuple[str, ...] = (
    "circle", "square", "triangle", "diamond", "star", "cross", "heart", "hexagon", "crescent", "arrow",
)
PLURAL_SHAPES: dict[str, str] = {s: ("crosses" if s == "cross" else s + "s") for s in SHAPES}
LETTERS: tuple[str, ...] = tuple("ABCDEFGHIJ")
DIGITS: tuple[str, ...] = tuple("0123456789")
# Novel families: never in the pre-training corpus (the world's analogue of MNIST / Aircraft in MTIL).
LETTER_OBJECTS: tuple[str, ...] = tuple(f"letter {c}" for c in LETTERS)
DIGIT_OBJECTS: tuple[str, ...] = tuple(f"digit {d}" for d in DIGITS)
OBJECTS: tuple[str, ...] = SHAPES + LETTER_OBJECTS + DIGIT_OBJECTS
NOVEL_OBJECTS: frozenset[str] = frozenset(LETTER_OBJECTS + DIGIT_OBJECTS)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 135, 20),
    "yellow": (240, 220, 30),
    "green": (40, 170, 50),
    "cyan": (30, 210, 220),
    "blue": (35, 70, 225),
    "purple": (125, 40, 185),
    "magenta": (230, 40, 200),
    "pink": (250, 160, 190),
    "brown": (130, 75, 30),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

SIZES: tuple[str, ...] = ("small", "medium", "large")
SIZE_FRACTIONS: tuple[float, ...] = (0.3, 0.45, 0.66)  # object box side / image side

POSITIONS: tuple[str, ...] = ("center", "left", "right", "top", "bottom")
POSITION_PHRASES: dict[str, str] = {
    "center": "in the center", "left": "on the left", "right": "on the right",
    "top": "at the top", "bottom": "at the bottom",
}
POSITION_ANCHORS: dict[str, tuple[float, float]] = {  # (row, column) of the object centre, image fractions
    "center": (0.5, 0.5), "left": (0.5, 0.2), "right": (0.5, 0.8), "top": (0.2, 0.5), "bottom": (0.8, 0.5),
}

FILLS: tuple[str, ...] = ("solid", "striped", "dotted", "checkered", "outlined")

BACKGROUNDS: dict[str, tuple[int, int, int] | None] = {
    "dark": (22, 22, 28), "light": (232, 232, 226), "gray": (128, 128, 128), "noisy": None,
}
BACKGROUND_NAMES: tuple[str, ...] = tuple(BACKGROUNDS)

COUNTS: tuple[int, ...] = (1, 2, 3, 4)
COUNT_WORDS: tuple[str, ...] = ("one", "two", "three", "four")

VOCABULARY: dict[str, tuple] = {
    "object": OBJECTS, "colour": COLOUR_NAMES, "size": SIZES, "position": POSITIONS,
    "fill": FILLS, "background": BACKGROUND_NAMES, "count": COUNTS,
}


@dataclass(frozen=True)
class Scene:
    """One image's attributes, by name (what captions talk about)."""

    object: str
    colour: str
    size: str = "medium"
    position: str = "center"
    fill: str = "solid"
    background: str = "dark"
    count: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) not in VOCABULARY[f.name]:
                raise ValueError(f"unknown {f.name} {getattr(self, f.name)!r}; valid: {VOCABULARY[f.name]}")

    @property
    def novel(self) -> bool:
        return self.object in NOVEL_OBJECTS


@dataclass
class SceneBatch:
    """Scenes as index arrays (one int64 array per attribute, equal lengths): the renderer's input."""

    object: np.ndarray
    colour: np.ndarray
    size: np.ndarray
    position: np.ndarray
    fill: np.ndarray
    background: np.ndarray
    count: np.ndarray  # the count itself (1..4), not an index

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, np.asarray(getattr(self, f.name), dtype=np.int64))
        n = len(self.object)
        if any(len(getattr(self, f.name)) != n for f in fields(self)):
            raise ValueError("all attribute arrays of a SceneBatch must have the same length")

    def __len__(self) -> int:
        return len(self.object)

    @classmethod
    def from_scenes(cls, scenes: list[Scene]) -> SceneBatch:
        return cls(**{
            f.name: [s.count if f.name == "count" else VOCABULARY[f.name].index(getattr(s, f.name)) for s in scenes]
            for f in fields(cls)
        })

    def scene(self, i: int) -> Scene:
        return Scene(**{
            f.name: int(self.count[i]) if f.name == "count" else VOCABULARY[f.name][int(getattr(self, f.name)[i])]
            for f in fields(self)
        })

    def scenes(self) -> list[Scene]:
        return [self.scene(i) for i in range(len(self))]
