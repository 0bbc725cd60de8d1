"""Labelled image datasets that can enter an Avalanche stream (they expose ``targets``).

Every item is ``(transform(rgb PIL image), int label)``. Images are converted to RGB first because several
official formats hold grayscale images (MNIST, MedMNIST, some Caltech101 photos) and CLIP expects 3 channels.
Labels come from the dataset's index files, never from decoding images, so building a stream stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

ImageTransform = Callable[[Image.Image], Any]


def as_rgb(image: Any) -> Image.Image:
    """A PIL RGB image from a PIL image of any mode or an ``HxW`` / ``HxWxC`` uint8 array."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image or a numpy array, got {type(image).__name__}")
    return image if image.mode == "RGB" else image.convert("RGB")


class LabeledView(Dataset):
    """A view of ``base`` (whose items are ``(image, ...)``) with its own labels, subset and transform.

    ``targets`` are labels of ``base``'s items (one per item of ``base``); ``indices`` select a subset (a split)
    in order. Labels may be remapped (e.g. class-order positions) without touching ``base``.
    """

    def __init__(self, base: Any, targets: Sequence[int], transform: ImageTransform,
                 indices: Sequence[int] | None = None) -> None:
        if len(targets) != len(base):
            raise ValueError(f"{len(targets)} targets for a dataset of {len(base)} items")
        self.base = base
        self.indices = list(range(len(base))) if indices is None else [int(i) for i in indices]
        self.targets = [int(targets[i]) for i in self.indices]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.base[self.indices[index]][0]
        return self.transform(as_rgb(image)), self.targets[index]


class ImageFiles(Dataset):
    """Image files on disk with their labels (folder layouts, CSV splits, TinyImageNet)."""

    def __init__(self, paths: Sequence[str | Path], targets: Sequence[int], transform: ImageTransform) -> None:
        if len(paths) != len(targets):
            raise ValueError(f"{len(paths)} image paths but {len(targets)} labels")
        self.paths = [str(p) for p in paths]
        self.targets = [int(t) for t in targets]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        with Image.open(self.paths[index]) as image:
            rgb = image.convert("RGB")  # decodes now, before the file closes (a copy even when already RGB)
        return self.transform(rgb), self.targets[index]


class ArrayImages(Dataset):
    """Images held in a uint8 array (``N x H x W`` or ``N x H x W x C``), e.g. MedMNIST's ``.npz`` files."""

    def __init__(self, images: np.ndarray, targets: Sequence[int] | np.ndarray,
                 transform: ImageTransform) -> None:
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} labels")
        self.images = images
        self.targets = [int(t) for t in np.asarray(targets).reshape(-1)]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.transform(as_rgb(np.ascontiguousarray(self.images[index]))), self.targets[index]

