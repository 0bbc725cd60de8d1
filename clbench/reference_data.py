"""The ``reference_data`` service: ZSCL's reference images and captions (ImageNet / Conceptual Captions analogue).

A method that lists ``"reference_data"`` in ``services`` reads a :class:`ReferenceData` through
``ctx.service("reference_data")``. Benchmarks may offer their own (the offline world puts its reference corpus
in ``bench.info["services"]["reference_data"]``, e.g. ``TensorReferenceData(ds.images, ds.captions, ds.mean,
ds.std)``); otherwise the provider here builds one from the method config's ``ref_images`` (any folder of
images, searched recursively) and ``ref_texts`` (any file with one caption per line). Images and captions are
independent sets, as in ZSCL (ImageNet images scored against CC captions); every image has a stable index so
a method can cache a frozen teacher's features per image.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from clbench.errors import UserError
from clbench.services import ServiceRequest, register_service

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class ReferenceData:
    """Reference images (indexed 0..num_images-1) and reference captions.

    Subclasses implement :meth:`image_batch`; :meth:`batches` gives endless shuffled epochs of
    ``(indices, images)`` (normalised float images, on the CPU) from a caller-owned generator.
    """

    captions: list[str]

    @property
    def num_images(self) -> int:
        raise NotImplementedError

    def image_batch(self, indices: torch.Tensor) -> torch.Tensor:
        """(len(indices), 3, H, W) normalised float images."""
        raise NotImplementedError

    def batches(self, batch_size: int, generator: torch.Generator,
                skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless epochs, each a fresh permutation drawn from ``generator``; the last short batch is kept.

        ``skip``: leave out the first ``skip`` batches without loading them (the generator advances as if they
        had been drawn: a method resumed mid-task continues the same sequence)."""
        while True:
            order = torch.randperm(self.num_images, generator=generator)
            for start in range(0, len(order), batch_size):
                if skip:
                    skip -= 1
                    continue
                idx = order[start:start + batch_size]
                yield idx, self.image_batch(idx)


class TensorReferenceData(ReferenceData):
    """In-memory reference images: uint8 (N, 3, H, W) normalised with ``mean``/``std``, or float already normalised."""

    def __init__(self, images: torch.Tensor, captions: Sequence[str], mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"reference images must be (N, 3, H, W), got {tuple(images.shape)}")
        if images.dtype == torch.uint8 and (mean is None or std is None):
            raise ValueError("uint8 reference images need the model's mean and std")
        if not captions:
            raise ValueError("the reference data has no captions")
        self.images = images
        self.captions = list(captions)
        self._mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = None if std is None else torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    @property
    def num_images(self) -> int:
        return len(self.images)

    def image_batch(self, indices: torch.Tensor) -> torch.Tensor:
        batch = self.images[indices]
        if batch.dtype == torch.uint8:
            return (batch.float() / 255.0 - self._mean) / self._std
        return batch.float()


class _ImageFiles(Dataset):
    def __init__(self, paths: Sequence[Path], transform: Callable[[Any], torch.Tensor]) -> None:
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        from PIL import Image

        with Image.open(self.paths[index]) as img:
            return index, self.transform(img.convert("RGB"))


class FolderReferenceData(ReferenceData):
    """Image files read lazily with the model's evaluation transform (ZSCL uses the test preprocess)."""

    def __init__(self, paths: Sequence[Path], captions: Sequence[str], transform: Callable[[Any], torch.Tensor],
                 num_workers: int = 0) -> None:
        if not paths:
            raise ValueError("the reference data has no images")
        if not captions:
            raise ValueError("the reference data has no captions")
        self.files = _ImageFiles(paths, transform)
        self.captions = list(captions)
        self.num_workers = num_workers

    @property
    def num_images(self) -> int:
        return len(self.files)

    def image_batch(self, indices: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.files[int(i)][1] for i in indices])

    def batches(self, batch_size: int, generator: torch.Generator,
                skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Same order (and ``skip``) as the base class; decoding runs in ``num_workers`` loader processes."""
        while True:
            order = torch.randperm(self.num_images, generator=generator)
            chunks = [order[s:s + batch_size].tolist() for s in range(0, len(order), batch_size)]
            skipped, skip = min(skip, len(chunks)), skip - min(skip, len(chunks))
            if skipped == len(chunks):
                continue
            loader = DataLoader(self.files, batch_sampler=chunks[skipped:], num_workers=self.num_workers)
            yield from loader


def image_files(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (recursive, common extensions), in a stable sorted order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def read_captions(path: Path) -> list[str]:
    """One caption per non-empty line (surrounding whitespace stripped)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return [line.strip() for line in fh if line.strip()]


def load_reference_data(ref_images: str | None, ref_texts: str | None, transform: Callable[[Any], torch.Tensor],
                        method: str = "method", num_workers: int = 0) -> FolderReferenceData:
    """A :class:`FolderReferenceData` from user paths; any problem is a one-line :class:`UserError`."""
    how = (f"set {method}.ref_images to a folder of images and {method}.ref_texts to a file with one caption "
           f"per line (or method.ref_images / method.ref_texts)")
    if not ref_images or not ref_texts:
        absent = " and ".join(k for k, v in (("ref_images", ref_images), ("ref_texts", ref_texts)) if not v)
        raise UserError(f"{method} needs reference data and this benchmark offers none: {absent} not set; {how}")
    folder, captions_file = Path(ref_images).expanduser(), Path(ref_texts).expanduser()
    if not folder.is_dir():
        raise UserError(f"{method}.ref_images={ref_images} is not a folder; {how}")
    if not captions_file.is_file():
        raise UserError(f"{method}.ref_texts={ref_texts} is not a file; {how}")
    paths = image_files(folder)
    if not paths:
        raise UserError(f"{method}.ref_images={ref_images} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    captions = read_captions(captions_file)
    if not captions:
        raise UserError(f"{method}.ref_texts={ref_texts} holds no captions (one per line expected)")
    return FolderReferenceData(paths, captions, transform, num_workers=num_workers)


@register_service("reference_data")
def provide_reference_data(request: ServiceRequest) -> ReferenceData:
    """Build the reference data from ``<method>.ref_images`` / ``<method>.ref_texts``."""
    import os

    cfg = request.method_config
    workers = 0 if (os.cpu_count() or 1) <= 2 else min(8, (os.cpu_count() or 1) - 1)
    return load_reference_data(getattr(cfg, "ref_images", None), getattr(cfg, "ref_texts", None),
                               request.transforms.eval, method=request.method, num_workers=workers)


def _user_configured(request: ServiceRequest) -> bool:
    """The user named their own reference data: it wins over the benchmark's corpus."""
    cfg = request.method_config
    return bool(getattr(cfg, "ref_images", None) or getattr(cfg, "ref_texts", None))


provide_reference_data.user_configured = _user_configured  # type: ignore[attr-defined]
