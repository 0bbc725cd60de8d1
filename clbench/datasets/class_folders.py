"""The class-folder layout: ``<dataset>/{train,test}/<class key>/<image files>`` (any depth below the class).

The bring-your-own-data medical benchmarks use it; labels follow the order of the class keys given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def class_dirs(split_dir: Path) -> list[str]:
    """Sorted class folder names under one split folder (hidden folders skipped)."""
    if not split_dir.is_dir():
        return []
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def images_under(folder: Path) -> list[Path]:
    """Image files below ``folder``, sorted by path (so the order is the same on every machine)."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def scan(split_dir: Path, class_keys: Sequence[str]) -> tuple[list[Path], list[int]]:
    """Image paths and labels (index of the class key) of one split."""
    paths: list[Path] = []
    labels: list[int] = []
    for label, key in enumerate(class_keys):
        files = images_under(split_dir / key)
        paths += files
        labels += [label] * len(files)
    return paths, labels
