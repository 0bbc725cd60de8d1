"""torchvision's readers of the official formats, with three adjustments clbench needs.

- :func:`targets_of`: every label without decoding an image (torchvision keeps them under different,
  partly private, attribute names).
- ``CIFAR100`` and ``Flowers102`` check MD5 sums of the archive members before reading; these subclasses check
  that the files exist instead, so a hand-placed copy (or a test's small fake in the same format) is read.
- ``SUN397`` lists images with ``Path.rglob``, whose order depends on the file system; the subclass sorts them so
  the seeded 80/20 split is the same on every machine.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import datasets


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
    """torchvision's CIFAR100 (``cifar-100-python/{train,test,meta}`` pickles), existence-checked.

    torchvision's ``check_integrity(path, None)`` only tests that the file exists, hence the MD5s set to None.
    """

    train_list = [[name, None] for name, _ in datasets.CIFAR100.train_list]
    test_list = [[name, None] for name, _ in datasets.CIFAR100.test_list]
    meta = {**datasets.CIFAR100.meta, "md5": None}


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
