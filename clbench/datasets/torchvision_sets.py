"""torchvision's readers of the official formats, with three adjustments clbench needs.

- :func:`targets_of`: every label without decoding an image (torchvision keeps them under different,
  partly private, attribute names).
- ``CIFAR100`` reads its pickles with a restricted unpickler (:mod:`clbench.datasets.safe_pickle`), so a
  malicious file cannot run code, and checks torchvision's MD5 sums of the official files unless
  ``verify_checksums=False`` (a hand-made copy, or a test's small fake in the same format).
- ``Flowers102`` checks MD5 sums of the archive members before reading; the subclass checks that the files
  exist instead, so a hand-placed copy is read (its ``.mat`` files are not pickles: reading runs no code).
- ``SUN397`` lists images with ``Path.rglob``, whose order depends on the file system; the subclass sorts them so
  the seeded 80/20 split is the same on every machine.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import datasets

from clbench.datasets import safe_pickle
from clbench.errors import UserError

CIFAR_HINT = "re-extract cifar-100-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html)"


def targets_of(dataset: Any) -> list[int]:
    """Integer labels of a torchvision dataset, in item order."""
    for attr in ("targets", "_labels", "y"):
        values = getattr(dataset, attr, None)
        if values is not None:
            if isinstance(values, torch.Tensor):
                values = values.tolist()
            return [int(v) for v in values]
    samples = getattr(dataset, "_samples", None)
    if samples is not None:
        return [int(label) for _, label in samples]
    raise TypeError(f"cannot find the labels of {type(dataset).__name__}")


class CIFAR100(datasets.CIFAR100):
    """torchvision's CIFAR100 (``cifar-100-python/{train,test,meta}`` pickles), read without running code.

    torchvision unpickles with ``pickle.load``; here every file goes through :func:`safe_pickle.loads` after
    (by default) torchvision's MD5 of the official release is checked. Items, ``classes`` and ``targets`` are
    torchvision's.
    """

    def __init__(self, root: str, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, download: bool = False,
                 verify_checksums: bool = True) -> None:
        datasets.VisionDataset.__init__(self, root, transform=transform, target_transform=target_transform)
        self.train = train
        self.verify_checksums = verify_checksums
        if download:
            self.download()
        arrays, self.targets = [], []
        for name, md5 in self.train_list if train else self.test_list:
            entry = self._read(name, md5)
            labels = entry.get("fine_labels", entry.get("labels"))
            data = entry.get("data")
            if not isinstance(data, np.ndarray) or not isinstance(labels, list) or len(labels) != len(data) \
                    or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                raise UserError(f"{self._path(name)} does not hold CIFAR-100 images and labels; {CIFAR_HINT}")
            arrays.append(data)
            self.targets.extend(int(v) for v in labels)
        self.data = np.vstack(arrays).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))  # HWC, as torchvision
        meta = self._read(self.meta["filename"], self.meta["md5"])
        classes = meta.get(self.meta["key"])
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise UserError(f"{self._path(self.meta['filename'])} holds no list of class names; {CIFAR_HINT}")
        self.classes = classes
        self.class_to_idx = {c: i for i, c in enumerate(classes)}

    def _path(self, name: str) -> str:
        return os.path.join(self.root, self.base_folder, name)

    def _read(self, name: str, md5: str) -> dict[str, Any]:
        """One pickled file: MD5-checked (unless turned off), unpickled without code, must be a dict."""
        path = self._path(name)
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror}; {CIFAR_HINT}") from None
        if self.verify_checksums:
            actual = hashlib.md5(raw, usedforsecurity=False).hexdigest()
            if actual != md5:
                raise UserError(f"{path}: MD5 {actual} is not the official release's {md5}; {CIFAR_HINT}, or set "
                                "benchmark.verify_checksums=false to read a copy made another way")
        try:
            obj = safe_pickle.loads(raw)
        except safe_pickle.ForbiddenGlobal as exc:
            raise UserError(f"{path}: refused to load, {exc}; the file is not CIFAR-100 data, {CIFAR_HINT}") \
                from None
        except Exception as exc:  # noqa: BLE001 - any decoding failure means "not a CIFAR pickle"
            raise UserError(f"{path} is not a readable CIFAR-100 pickle ({type(exc).__name__}); {CIFAR_HINT}") \
                from None
        if not isinstance(obj, dict):
            raise UserError(f"{path} does not hold a CIFAR-100 record (a dict); {CIFAR_HINT}")
        return obj


class Flowers102(datasets.Flowers102):
    """torchvision's Flowers102 (``flowers-102/{jpg/,imagelabels.mat,setid.mat}``), existence-checked."""

    _file_dict = {key: (name, None) for key, (name, _) in datasets.Flowers102._file_dict.items()}


class SUN397(datasets.SUN397):
    """torchvision's SUN397 (``SUN397/ClassName.txt`` + ``SUN397/<l>/<class>/sun_*.jpg``), sorted by path."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pairs = sorted(zip(self._image_files, self._labels, strict=True), key=lambda p: str(p[0]))
        self._image_files = [p for p, _ in pairs]
        self._labels = [label for _, label in pairs]
