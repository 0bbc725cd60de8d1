"""Decoded evaluation sets: each test set is decoded and eval-transformed once per run, then served as tensors.

Why: a run evaluates every test set after every task (MTIL: 11 sets, 12 times, ~1.1M image forwards). Decoding
the JPEGs and resizing them again each time makes evaluation data-bound on a GPU. The first evaluation pass of
a set goes through the set's own DataLoader (so it scores exactly the tensors the uncached path would) and
records them; later passes read the recorded tensor.

What is stored: the eval transforms end in ``ToTensor`` (k/255) and ``Normalize(mean, std)`` (open_clip's
preprocess; the world's datasets normalise uint8 tensors the same way). Each batch is mapped back to uint8
``round((x * std + mean) * 255)`` and kept only if normalising it again -- ``u.float() / 255``, ``- mean``,
``/ std``, the very operations of ``ToTensor`` + ``Normalize`` -- gives back ``x`` bit for bit; normalisation then
runs on the device at evaluation time (uint8 moves 4x fewer bytes). A set whose values are not k/255 images
(the smoke benchmark's random patterns) is kept as the float32 tensors themselves. Either way the evaluator
sees identical inputs, so accuracies are identical to the uncached path.

Where: in host memory while the run's sets fit ``memory_bytes``; a set beyond that goes to a memory-mapped
``.npy`` file under ``cache_dir``, keyed by the dataset's identity (benchmark, options, task, size, labels) and
the transform's ``repr``, written atomically and reused by later runs with the same key. Delete the folder if
the images on disk change without changing their count or labels.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from clbench.store import write_atomic

FORMAT_VERSION = 1


@dataclass(frozen=True)
class CachePolicy:
    """Where decoded sets may live: ``memory_bytes`` of host memory in all, then files under ``cache_dir``."""

    memory_bytes: int
    cache_dir: Path | None
    pin: bool = False  # page-locked host memory (CUDA): asynchronous copies to the device


class MemoryBudget:
    """Host memory still free for decoded sets in this run (shared by all of a run's sets)."""

    def __init__(self, total: int) -> None:
        self.left = int(total)

    def take(self, nbytes: int) -> bool:
        if nbytes > self.left:
            return False
        self.left -= nbytes
        return True

    def give(self, nbytes: int) -> None:
        self.left += nbytes


def default_memory_bytes() -> int:
    """A quarter of the machine's physical memory (MTIL's test sets at 224 px take ~14 GB as uint8)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):
        return 4 * 1024**3


def dataset_key(identity: dict[str, Any], transform: str, labels: np.ndarray) -> str:
    """Cache key of one eval set: what the dataset is, how its images are transformed, its labels."""
    blob = json.dumps({"v": FORMAT_VERSION, "identity": identity, "transform": transform}, sort_keys=True,
                      default=str).encode() + labels.astype(np.int64).tobytes()
    return hashlib.sha256(blob).hexdigest()[:32]


def _as_uint8(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor | None:
    """``x`` as the uint8 images it was normalised from, or None when that is not exact."""
    u = (x * std + mean).mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return u if torch.equal(normalise(u, mean, std), x) else None


def normalise(u: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``ToTensor`` + ``Normalize`` of uint8 images, operation for operation (bit-identical results)."""
    return u.to(torch.float32).div_(255).sub_(mean).div_(std)


class DecodedLoader:
    """Iterates (images, labels) of one eval set: through ``loader`` until a full pass is recorded, then from it.

    Images come out on ``device``, normalised; labels on the host. ``len(self.dataset)`` is the set size.
    """

    def __init__(self, loader: DataLoader, device: torch.device, mean: tuple[float, ...], std: tuple[float, ...],
                 policy: CachePolicy, budget: MemoryBudget, key: Callable[[], str]) -> None:
        self.loader = loader
        self.dataset = loader.dataset
        self.batch_size = int(loader.batch_size or 1)
        self.device = device
        self.policy = policy
        self.budget = budget
        self._key_fn = key
        self._key: str | None = None
        self._mean_host = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std_host = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self._mean_dev = self._mean_host.to(device)
        self._std_dev = self._std_host.to(device)
        self.images: torch.Tensor | np.ndarray | None = None  # (N, 3, H, W) uint8 or float32, or a memmap
        self.labels: torch.Tensor | None = None
        self.where = "none"  # none | memory | file | uncacheable
        self._load_file()

    # ---- state ------------------------------------------------------------------------------------------
    @property
    def cached(self) -> bool:
        return self.images is not None

    def _paths(self) -> tuple[Path, Path, Path] | None:
        if self.policy.cache_dir is None:
            return None
        if self._key is None:
            self._key = self._key_fn()
        base = self.policy.cache_dir / self._key
        return base.with_suffix(".images.npy"), base.with_suffix(".labels.npy"), base.with_suffix(".json")

    def _load_file(self) -> None:
        paths = self._paths()
        if paths is None or not paths[2].is_file():
            return
        meta = json.loads(paths[2].read_text())
        images = np.load(paths[0], mmap_mode="r")
        labels = np.load(paths[1])
        if meta.get("version") != FORMAT_VERSION or len(images) != len(self.dataset) or len(labels) != len(images):
            return
        self.images, self.labels, self.where = images, torch.from_numpy(labels.astype(np.int64)), "file"

    # ---- iteration --------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.where == "uncacheable":
            for x, y in self.loader:
                yield x.to(self.device, non_blocking=True), y
            return
        if not self.cached:
            yield from self._record()
            return
        assert self.images is not None and self.labels is not None
        n = len(self.labels)
        for start in range(0, n, self.batch_size):
            chunk = self.images[start:start + self.batch_size]
            if isinstance(chunk, np.ndarray):
                chunk = torch.from_numpy(np.array(chunk))  # a writable copy of the mapped rows
            chunk = chunk.to(self.device, non_blocking=True)
            if chunk.dtype == torch.uint8:
                chunk = normalise(chunk, self._mean_dev, self._std_dev)
            yield chunk, self.labels[start:start + self.batch_size]

    def _record(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass through the loader, yielding its batches unchanged while storing them."""
        n = len(self.dataset)
        store: torch.Tensor | np.ndarray | None = None
        labels = torch.empty(n, dtype=torch.long)
        as_float = False
        reserved = 0
        tmp: Path | None = None
        pos = 0
        ok = True
        try:
            for x, y in self.loader:
                b = len(x)
                if ok:
                    u = None if as_float else _as_uint8(x, self._mean_host, self._std_host)
                    if store is None:
                        as_float = u is None
                        store, reserved, tmp = self._allocate(n, tuple(x.shape[1:]), as_float)
                        ok = store is not None
                    elif u is None and not as_float:
                        store, reserved = self._to_float(store, reserved, pos, n)
                        as_float, ok = True, store is not None
                    if ok:
                        self._put(store, pos, x if as_float else u)  # type: ignore[arg-type]
                        labels[pos:pos + b] = y
                pos += b
                yield x.to(self.device, non_blocking=True), y
        except BaseException:
            self._discard(reserved, tmp)
            raise
        if not ok or pos != n or store is None:
            self._discard(reserved, tmp)
            self.where = "uncacheable" if not ok else "none"
            return
        if isinstance(store, np.ndarray):
            self._commit_file(store, labels, tmp)
        else:
            self.images, self.labels, self.where = store, labels, "memory"

    # ---- storage ----------------------------------------------------------------------------------------
    def _allocate(self, n: int, shape: tuple[int, ...], as_float: bool
                  ) -> tuple[torch.Tensor | np.ndarray | None, int, Path | None]:
        dtype = torch.float32 if as_float else torch.uint8
        nbytes = n * int(np.prod(shape)) * (4 if as_float else 1)
        if self.budget.take(nbytes):
            pin = self.policy.pin and torch.cuda.is_available()
            return torch.empty((n, *shape), dtype=dtype, pin_memory=pin), nbytes, None
        paths = self._paths()
        if paths is None or as_float:  # files hold uint8 images only
            return None, 0, None
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        tmp = paths[0].with_name(f".{paths[0].name}.{os.getpid()}.tmp")
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, *shape))
        return arr, 0, tmp

    def _to_float(self, store: torch.Tensor | np.ndarray, reserved: int, filled: int, n: int
                  ) -> tuple[torch.Tensor | None, int]:
        """A set found not to be k/255 images part-way: re-store what was recorded as float32 (exact)."""
        if isinstance(store, np.ndarray):
            return None, reserved
        self.budget.give(reserved)
        nbytes = reserved * 4
        if not self.budget.take(nbytes):
            return None, 0
        out = torch.empty(store.shape, dtype=torch.float32, pin_memory=store.is_pinned())
        out[:filled] = normalise(store[:filled], self._mean_host, self._std_host)
        return out, nbytes

    @staticmethod
    def _put(store: torch.Tensor | np.ndarray, pos: int, batch: torch.Tensor) -> None:
        if isinstance(store, np.ndarray):
            store[pos:pos + len(batch)] = batch.numpy()
        else:
            store[pos:pos + len(batch)] = batch

    def _discard(self, reserved: int, tmp: Path | None) -> None:
        self.budget.give(reserved)
        if tmp is not None and tmp.exists():
            tmp.unlink()

    def _commit_file(self, store: np.ndarray, labels: torch.Tensor, tmp: Path | None) -> None:
        """Flush, rename into place, write the labels and, last, the marker that makes the entry valid."""
        paths = self._paths()
        assert paths is not None and tmp is not None
        store.flush()  # type: ignore[attr-defined]
        del store
        os.replace(tmp, paths[0])
        buf = _npy_bytes(labels.numpy())
        write_atomic(paths[1], buf)
        write_atomic(paths[2], json.dumps({"version": FORMAT_VERSION, "images": len(labels)}) + "\n")
        self._load_file()


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()
