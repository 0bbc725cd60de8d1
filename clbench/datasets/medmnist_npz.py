"""MedMNIST's official ``.npz`` files (MedMNIST v2 / MedMNIST+; Yang et al., Scientific Data 2023, CC BY 4.0).

``<flag>.npz`` holds the 28x28 images, ``<flag>_<size>.npz`` the 64/128/224 ones. Keys:
``{train,val,test}_images`` (uint8, ``N x H x W`` or ``N x H x W x 3``) and ``{train,val,test}_labels``
(``N x 1`` for the single-label datasets clbench uses).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from clbench.errors import UserError

SIZES = (28, 64, 128, 224)
SPLITS = ("train", "val", "test")


def file_name(flag: str, size: int) -> str:
    """``pathmnist.npz`` for 28 px, ``pathmnist_64.npz`` otherwise."""
    if size not in SIZES:
        raise ValueError(f"MedMNIST size must be one of {', '.join(map(str, SIZES))}, not {size}")
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


@contextmanager
def _archive(path: Path) -> Iterator[np.lib.npyio.NpzFile]:
    """``np.load`` of an ``.npz`` without pickles; a damaged or foreign file is a one-line error."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("a single array, not an .npz archive")
            yield archive
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise UserError(f"{path} is not a readable MedMNIST .npz ({reason}); download it again from "
                        "https://zenodo.org/records/10519652") from None


def missing_keys(path: Path, splits: tuple[str, ...] = ("train", "test")) -> list[str]:
    """Array names ``path`` lacks (reads only the zip directory, not the arrays)."""
    with _archive(path) as archive:
        present = set(archive.files)
    return [k for s in splits for k in (f"{s}_images", f"{s}_labels") if k not in present]


def load_split(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and flat integer labels of one split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    with _archive(path) as archive:
        images = archive[f"{split}_images"]
        labels = archive[f"{split}_labels"]
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or len(images) != len(labels) \
            or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{path}: {split}_images/{split}_labels are not MedMNIST arrays (uint8 N x H x W[x3] and "
                        f"N integer labels; got {images.dtype} {images.shape} and {labels.dtype} {labels.shape})")
    if labels.ndim > 1 and labels.shape[1] != 1:
        raise ValueError(f"{path}: {split}_labels has shape {labels.shape}; clbench needs single-label data")
    return images, labels.reshape(-1).astype(np.int64)
