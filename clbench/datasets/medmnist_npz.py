"""MedMNIST's official ``.npz`` files (MedMNIST v2 / MedMNIST+; Yang et al., Scientific Data 2023, CC BY 4.0).

``<flag>.npz`` holds the 28x28 images, ``<flag>_<size>.npz`` the 64/128/224 ones. Keys:
``{train,val,test}_images`` (uint8, ``N x H x W`` or ``N x H x W x 3``) and ``{train,val,test}_labels``
(``N x 1`` for the single-label datasets clbench uses).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZES = (28, 64, 128, 224)
SPLITS = ("train", "val", "test")


def file_name(flag: str, size: int) -> str:
    """``pathmnist.npz`` for 28 px, ``pathmnist_64.npz`` otherwise."""
    if size not in SIZES:
        raise ValueError(f"MedMNIST size must be one of {', '.join(map(str, SIZES))}, not {size}")
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def missing_keys(path: Path, splits: tuple[str, ...] = ("train", "test")) -> list[str]:
    """Array names ``path`` lacks (reads only the zip directory, not the arrays)."""
    with np.load(path) as archive:
        present = set(archive.files)
    return [k for s in splits for k in (f"{s}_images", f"{s}_labels") if k not in present]


def load_split(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and flat integer labels of one split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    with np.load(path) as archive:
        images = archive[f"{split}_images"]
        labels = archive[f"{split}_labels"]
    if labels.ndim > 1 and labels.shape[1] != 1:
        raise ValueError(f"{path}: {split}_labels has shape {labels.shape}; clbench needs single-label data")
    return images, labels.reshape(-1).astype(np.int64)
