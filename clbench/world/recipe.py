"""The pre-training recipe of the world CLIP, apart from the trainer so the CLI can show its defaults without
importing torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PretrainConfig:
    """The recipe. Its defaults produced the bundled weights: ``clbench world pretrain`` rebuilds them byte for
    byte (14.6 min on one core here)."""

    steps: int = 3000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_fraction: float = 0.05
    seed: int = 0
    # Part of the recipe (float reductions depend on it). One thread: on a busy 2-core machine two OpenMP
    # threads spin-wait for each other and were 5x slower per step.
    threads: int = 1
    image_size: int = 32
