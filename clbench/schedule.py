"""Learning-rate schedule of ZSCL/GIFT (``cosine_lr`` in their ``src/models/utils.py``)."""

from __future__ import annotations

import math

import torch


def cosine_lr(step: int, base_lr: float, warmup: int, total: int) -> float:
    """Linear warm-up ``base_lr * (step + 1) / warmup`` for ``step < warmup``, then cosine decay to 0."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    elapsed, span = step - warmup, max(total - warmup, 1)
    return 0.5 * (1 + math.cos(math.pi * elapsed / span)) * base_lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
