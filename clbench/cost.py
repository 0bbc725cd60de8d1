"""What a run costs: wall time and images per phase, peak memory; written to ``run.json`` as ``cost``.

Why: a harness that sweeps dozens of long runs is judged by where their time goes. Phases:

- ``generation``: building the method's services before the first task (GIFT's synthetic images generated,
  or found in the shared cache; ZSCL's reference data loaded). Images = images generated in this run.
- ``training``: ``before_task`` + the optimizer steps + ``after_task`` of every task (teacher features,
  Fisher estimates, weight averaging included). Images = steps x batch size of task images (a method's
  extra synthetic or reference batches are not counted).
- ``evaluation``: every accuracy-matrix row, the decoded-set cache's recording pass included. Images = test
  images scored.

Peak memory: the process's peak resident set (host) and ``torch.cuda.max_memory_allocated`` (GPU, None on
CPU). A resumed run adds its seconds and images to the checkpoint's and keeps the larger peaks; the work of an
interrupted task after its last checkpoint is not counted (as for ``wall_time_s``).
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

PHASES = ("generation", "training", "evaluation")


def host_peak_mb() -> float:
    """Peak resident set size of this process in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024


@dataclass
class CostMeter:
    """Accumulates seconds and images per phase; ``to_json`` is the ``cost`` block of ``run.json``."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    images: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PHASES, 0))
    peak_host_mb: float = 0.0
    peak_gpu_mb: float | None = None

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a block as ``name``; on CUDA the device is synchronised at the end so queued work counts."""
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}; valid: {', '.join(PHASES)}")
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.seconds[name] += time.perf_counter() - start

    def add_images(self, name: str, count: int) -> None:
        self.images[name] += int(count)

    def sample_memory(self) -> None:
        self.peak_host_mb = max(self.peak_host_mb, host_peak_mb())
        if self.device.type == "cuda":
            gpu = torch.cuda.max_memory_allocated(self.device) / 1024**2
            self.peak_gpu_mb = max(self.peak_gpu_mb or 0.0, gpu)

    def to_json(self) -> dict[str, Any]:
        self.sample_memory()
        phases = {}
        for name in PHASES:
            s, n = self.seconds[name], self.images[name]
            phases[name] = {"seconds": round(s, 3), "images": n,
                            "images_per_s": round(n / s, 2) if s > 0 and n > 0 else None}
        return {"phases": phases, "peak_host_memory_mb": round(self.peak_host_mb, 1),
                "peak_gpu_memory_mb": None if self.peak_gpu_mb is None else round(self.peak_gpu_mb, 1)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None, device: torch.device) -> CostMeter:
        """A meter that continues a checkpoint's ``cost`` (resume accumulates)."""
        meter = cls(device=device)
        if not data:
            return meter
        for name, entry in (data.get("phases") or {}).items():
            if name in PHASES:
                meter.seconds[name] = float(entry.get("seconds") or 0.0)
                meter.images[name] = int(entry.get("images") or 0)
        meter.peak_host_mb = float(data.get("peak_host_memory_mb") or 0.0)
        gpu = data.get("peak_gpu_memory_mb")
        meter.peak_gpu_mb = None if gpu is None else float(gpu)
        return meter
