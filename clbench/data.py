"""DataLoaders for stream experiences: the engine's job, never a method's."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset


def collate_image_label(items: Sequence[Sequence[Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (image, label[, task label...]) items into two tensors; Avalanche's task labels are dropped."""
    images = torch.stack([item[0] for item in items])
    labels = torch.as_tensor([int(item[1]) for item in items], dtype=torch.long)
    return images, labels


def make_loader(dataset: Dataset, batch_size: int, device: torch.device, shuffle: bool = False,
                generator: torch.Generator | None = None, num_workers: int = 0,
                drop_last: bool = False) -> DataLoader:
    """A loader with pinned memory and persistent workers on CUDA (and none of that on CPU)."""
    cuda = device.type == "cuda"
    num_workers = min(num_workers, os.cpu_count() or 1)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=num_workers,
        pin_memory=cuda,
        persistent_workers=cuda and num_workers > 0,
        drop_last=drop_last,
        collate_fn=collate_image_label,
    )


def cycle(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Iterate ``loader`` forever, reshuffling each pass (iteration-based schedules, as in ZSCL)."""
    while True:
        yield from loader
