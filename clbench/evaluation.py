"""Evaluation: one accuracy-matrix row per call (per-task heads for task-incremental, seen-class head for cil)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from clbench.benchmark import Benchmark
from clbench.text_heads import TextHeadCache


@dataclass
class RowResult:
    """Accuracy (%) per task (NaN where not evaluated), test-set sizes, and macro AUC (%) where asked."""

    accuracy: list[float]
    counts: list[int]
    auc: list[float] | None


def macro_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Macro one-vs-rest ROC AUC over the classes present in ``labels`` (rank statistic, ties averaged)."""
    from scipy.stats import rankdata

    values = []
    for c in np.unique(labels):
        pos = labels == c
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = rankdata(scores[:, c])
        values.append((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(values)) if values else float("nan")


@torch.inference_mode()
def image_features(model: nn.Module, loader: DataLoader, device: torch.device,
                   autocast: object) -> tuple[torch.Tensor, torch.Tensor]:
    feats, labels = [], []
    for images, y in loader:
        with autocast():  # type: ignore[operator]
            f = model.encode_image(images.to(device, non_blocking=True))
        feats.append(F.normalize(f.float(), dim=-1))
        labels.append(y)
    return torch.cat(feats), torch.cat(labels).to(device)


def evaluate_row(model: nn.Module, bench: Benchmark, after_task: int | None, loaders: list[DataLoader],
                 heads: TextHeadCache, device: torch.device, autocast: object, with_auc: bool = False) -> RowResult:
    """Accuracy on every task's test set after training ``after_task`` (None = before any training).

    Task-incremental protocols score task j with its own classes and all its templates (future tasks included:
    zero-shot Transfer needs them). Class-incremental scores tasks j <= t with the head over every class seen
    so far; future tasks are NaN (they have no head yet). Before training, cil scores each task with the head of
    the classes seen up to it (the zero-shot reference of each step).
    """
    model.eval()
    acc: list[float] = []
    counts: list[int] = []
    aucs: list[float] = []
    for j, task in enumerate(bench.tasks):
        counts.append(len(loaders[j].dataset))  # type: ignore[arg-type]
        if bench.protocol == "cil":
            head_upto = j if after_task is None else after_task
            if j > head_upto:
                acc.append(math.nan)
                aucs.append(math.nan)
                continue
            names = bench.seen_class_names(head_upto)
        else:
            names = task.class_names
        head = heads.get(model, names, task.templates)
        feats, labels = image_features(model, loaders[j], device, autocast)
        logits = feats @ head.t()
        acc.append(100.0 * float((logits.argmax(dim=1) == labels).float().mean()))
        if with_auc:
            probs = logits.mul(100.0).softmax(dim=1).cpu().numpy()
            aucs.append(100.0 * macro_auc(probs, labels.cpu().numpy()))
    return RowResult(accuracy=acc, counts=counts, auc=aucs if with_auc else None)
