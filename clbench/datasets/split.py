"""ZSCL's split of datasets that ship without a test set (Caltech101, EuroSAT, SUN397).

ZSCL (``ClassificationDataset.split_dataset``) calls ``torch.utils.data.random_split`` with sizes
``int(0.8 * n)`` / ``n - int(0.8 * n)`` and ``torch.Generator().manual_seed(42)``; the same call on a dataset of
the same length and item order gives the same split, so we reproduce it exactly.
"""

from __future__ import annotations

import torch
from torch.utils.data import random_split

TRAIN_FRACTION = 0.8
SEED = 42


def seeded_split(n: int, train_fraction: float = TRAIN_FRACTION, seed: int = SEED) -> tuple[list[int], list[int]]:
    """Indices of the train and test parts of ``n`` items, as ZSCL's ``random_split`` draws them."""
    train_size = int(train_fraction * n)
    generator = torch.Generator().manual_seed(seed)
    train, test = random_split(range(n), [train_size, n - train_size], generator=generator)
    return list(train.indices), list(test.indices)
