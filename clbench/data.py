"""DataLoaders for stream experiences: the engine's job, never a method's.

On CUDA the loaders decode in worker processes (``train.num_workers: auto`` picks the count from the CPUs),
pin host memory and prefetch, so that JPEG decoding and resizing overlap the model's compute; on CPU the
model and the loader share the same cores and the default stays in-process (workers would only compete).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def collate_image_label(items: Sequence[Sequence[Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (image, label[, task label...]) items into two tensors; Avalanche's task labels are dropped."""
    images = torch.stack([item[0] for item in items])
    labels = torch.as_tensor([int(item[1]) for item in items], dtype=torch.long)
    return images, labels


#: Batches each worker keeps ready on CUDA (PyTorch's default is 2): slack for slow JPEGs.
PREFETCH_FACTOR = 4
#: Evaluation batch on a GPU with ``train.eval_batch_size: auto`` (inference only: no activations kept).
GPU_EVAL_BATCH = 1024
CPU_EVAL_BATCH = 256


def auto_workers(device: torch.device, cpu_count: int | None = None) -> int:
    """Loader workers for ``num_workers: auto``: none on CPU; on CUDA all CPUs but one for the main process,
    at most 16 (more rarely helps one GPU and multiplies host memory)."""
    if device.type != "cuda":
        return 0
    cpus = cpu_count if cpu_count is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                    else os.cpu_count() or 1)
    return max(1, min(16, cpus - 1))


def resolve_workers(setting: int | str, device: torch.device) -> int:
    """``train.num_workers`` (an int or ``auto``) as a worker count for ``device``."""
    return auto_workers(device) if setting == "auto" else int(setting)


def resolve_eval_batch(setting: int | str, device: torch.device) -> int:
    """``train.eval_batch_size`` (an int or ``auto``): 1024 on CUDA, 256 on CPU."""
    if setting == "auto":
        return GPU_EVAL_BATCH if device.type == "cuda" else CPU_EVAL_BATCH
    return int(setting)


def make_loader(dataset: Dataset, batch_size: int, device: torch.device, shuffle: bool = False,
                generator: torch.Generator | None = None, num_workers: int = 0,
                drop_last: bool = False, persistent: bool = True) -> DataLoader:
    """A loader with pinned memory, prefetch and (``persistent``) long-lived workers on CUDA; none on CPU.

    One-pass loaders (an eval set that the decoded-set cache records once) pass ``persistent=False`` so their
    workers exit after the pass instead of idling for the rest of the run.
    """
    cuda = device.type == "cuda"
    num_workers = min(num_workers, os.cpu_count() or 1)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=num_workers,
        pin_memory=cuda,
        persistent_workers=cuda and num_workers > 0 and persistent,
        prefetch_factor=PREFETCH_FACTOR if cuda and num_workers > 0 else None,
        drop_last=drop_last,
        collate_fn=collate_image_label,
    )


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integer parts (numpy's SeedSequence hashing: nearby inputs give unrelated seeds)."""
    state = np.random.SeedSequence([int(p) % (2**63) for p in parts]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class StepBatches(Sampler[list[tuple[int, int]]]):
    """Training batches as a pure function of (seed, step): lists of ``(dataset index, draw seed)``.

    Step ``s`` lies in pass ``e = s // ceil(n / batch_size)`` over the data; pass ``e`` visits the examples in
    the permutation seeded by (seed, e), in batches of ``batch_size`` with a smaller last one (a shuffled
    DataLoader without ``drop_last`` re-created every pass, as ZSCL's ``iter(train_loader)``). Every draw has
    its own seed from (seed, step, position), so a random augmentation does not depend on the worker that
    loads it, nor on the steps before: the batches from ``start`` equal the tail of the batches from 0
    (mid-task resume). ``shuffle=False`` visits the data in order once (fixed passes: Fisher, herding).

    ``part`` (data parallelism, ``clbench.distributed``): given a step batch's size, the positions in it that
    this process loads (its contiguous shard); the draws keep the whole batch's seeds, so the shards of all
    ranks together are exactly the single-process batch.
    """

    def __init__(self, num_examples: int, batch_size: int, seed: int, steps: int | None = None, start: int = 0,
                 shuffle: bool = True, part: Callable[[int], range] | None = None) -> None:
        if num_examples <= 0 or batch_size <= 0:
            raise ValueError("StepBatches needs a non-empty dataset and a positive batch size")
        self.num_examples, self.batch_size, self.seed = num_examples, batch_size, seed
        self.per_pass = math.ceil(num_examples / batch_size)
        self.shuffle = shuffle
        self.steps = steps if shuffle else min(steps or self.per_pass, self.per_pass)
        self.start = start
        self.part = part
        self._order: tuple[int, torch.Tensor] | None = None

    def order(self, epoch: int) -> torch.Tensor:
        """The visiting order of pass ``epoch``."""
        if not self.shuffle:
            return torch.arange(self.num_examples)
        if self._order is None or self._order[0] != epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, 0, epoch))
            self._order = (epoch, torch.randperm(self.num_examples, generator=g))
        return self._order[1]

    def size(self, step: int) -> int:
        """Examples in step ``step``'s whole batch (the last batch of a pass may be short)."""
        position = step % self.per_pass
        return min(self.batch_size, self.num_examples - position * self.batch_size)

    def batch(self, step: int) -> list[tuple[int, int]]:
        epoch, position = divmod(step, self.per_pass)
        indices = self.order(epoch)[position * self.batch_size:(position + 1) * self.batch_size].tolist()
        positions = range(len(indices)) if self.part is None else self.part(len(indices))
        return [(indices[j], derive_seed(self.seed, 1, step, j)) for j in positions]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start
        while self.steps is None or step < self.steps:
            yield self.batch(step)
            step += 1

    def __len__(self) -> int:
        if self.steps is None:
            raise TypeError("an endless StepBatches has no length")
        return max(self.steps - self.start, 0)


class SeededDraws(Dataset):
    """``dataset[index]`` with torch's global CPU RNG seeded by the draw's seed (torchvision's random transforms).

    The RNG state outside the draw is restored, so loading never perturbs the training randomness. Only the CPU
    generator is seeded (the transforms draw from it): ``torch.manual_seed`` would also queue a lazy seeding of
    every accelerator generator, which records a stack trace per device on each call — 70 % of a 32-px draw's
    time — and would leave the CUDA generator reseeded by the last draw.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, draw: tuple[int, int]) -> Any:
        index, seed = draw
        generator = torch.default_generator
        state = generator.get_state()
        try:
            generator.manual_seed(seed)
            return self.dataset[index]
        finally:
            generator.set_state(state)


def step_loader(dataset: Dataset, sampler: StepBatches, device: torch.device, num_workers: int = 0) -> DataLoader:
    """A DataLoader over ``sampler``'s seeded draws of ``dataset``: same batches for any ``num_workers``."""
    cuda = device.type == "cuda"
    num_workers = min(num_workers, os.cpu_count() or 1)
    return DataLoader(SeededDraws(dataset), batch_sampler=sampler, num_workers=num_workers, pin_memory=cuda,
                      collate_fn=collate_image_label)
